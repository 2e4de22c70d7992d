"""``sense-plugin verify DIR``: re-hash an export directory's files against its manifest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sense_plugin.evidence import signing
from sense_plugin.evidence.signing import SIGNATURE_NAME
from sense_plugin.export.manifest import MANIFEST_NAME, device_failures, parse_manifest

_READ_BYTES = 1024 * 1024


@dataclass
class VerifyReport:
    """What ``verify`` found; ``ok`` only when every listed file matches and nothing is extra."""

    checked: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    #: The export's status in its manifest, its device count and the failed devices' errors.
    status: str = ""
    devices: int = 0
    failures: list[str] = field(default_factory=list)
    #: With a key: "" when the signature verifies, else the one line saying why not.
    signature_problem: str = ""
    signature_checked: str = ""  # the key's fingerprint once the signature verified

    @property
    def ok(self) -> bool:
        return not (self.problem or self.mismatched or self.missing or self.extra
                    or self.failures or self.signature_problem)

    def lines(self) -> list[str]:
        """Human-readable findings, one per line."""
        if self.problem:
            return [f"ERROR {self.problem}"]
        out = [f"BAD SIGNATURE {self.signature_problem}"] if self.signature_problem else []
        if self.signature_checked:
            out.append(f"SIGNATURE OK {SIGNATURE_NAME} (key {self.signature_checked})")
        out += [f"MISMATCH {m} ({self.details.get(m, '')})" for m in self.mismatched]
        out += [f"MISSING {name}" for name in self.missing]
        out += [f"EXTRA {name}" for name in self.extra]
        bad = set(self.mismatched) | set(self.missing)
        out += [f"OK {name}" for name in self.checked if name not in bad]
        if self.failures:
            out.append(f"EXPORT {self.status}: {len(self.failures)} of {self.devices} devices "
                       "failed; their errors as the manifest records them:")
            out += [f"FAILED {line}" for line in self.failures]
        return out


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def check_signature(report: VerifyReport, directory: Path, data: bytes,
                    key: Ed25519PublicKey) -> None:
    """Check ``manifest.sig`` against the exact manifest bytes read (``data``)."""
    try:
        signature = (directory / SIGNATURE_NAME).read_bytes()
    except FileNotFoundError:
        report.signature_problem = f"{SIGNATURE_NAME} is missing: the manifest is not signed"
        return
    except OSError as exc:
        report.signature_problem = f"cannot read {SIGNATURE_NAME}: {exc.strerror}"
        return
    if signing.verify(key, data, signature):
        report.signature_checked = signing.fingerprint(key)
    else:
        report.signature_problem = (
            f"{SIGNATURE_NAME} does not verify {MANIFEST_NAME} with the key "
            f"{signing.fingerprint(key)}: the manifest was changed or signed by another key")


def verify_directory(directory: Path, key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check every file the manifest lists (size and SHA-256) and look for unlisted files;
    with ``key``, also the manifest's signature."""
    report = VerifyReport()
    manifest_path = directory / MANIFEST_NAME
    try:
        data = manifest_path.read_bytes()
        listed = parse_manifest(data)
        report.status, report.devices, report.failures = device_failures(data)
    except OSError as exc:
        report.problem = f"cannot read {manifest_path}: {exc.strerror}"
        return report
    except ValueError as exc:
        report.problem = f"{manifest_path}: {exc}"
        return report
    if key is not None:
        check_signature(report, directory, data, key)
    for entry in listed:
        report.checked.append(entry.name)
        path = directory / entry.name
        if not path.is_file():
            report.missing.append(entry.name)
            continue
        size = path.stat().st_size
        if size != entry.size_bytes:
            report.mismatched.append(entry.name)
            report.details[entry.name] = f"size {size}, manifest says {entry.size_bytes}"
            continue
        digest = sha256_file(path)
        if digest != entry.sha256:
            report.mismatched.append(entry.name)
            report.details[entry.name] = f"sha256 {digest}, manifest says {entry.sha256}"
    names = {entry.name for entry in listed} | {MANIFEST_NAME, SIGNATURE_NAME}
    report.extra = sorted(p.name for p in directory.iterdir() if p.name not in names)
    return report
