"""``sense-plugin verify DIR [--key PEM]``: re-hash an export's files against its manifest and
check the manifest's Ed25519 signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sense_plugin import signing
from sense_plugin.export.manifest import MANIFEST_NAME, device_failures, parse_manifest
from sense_plugin.hashing import sha256_of_path
from sense_plugin.signing import SIGNATURE_NAME


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
    #: One line about the signature: checked and good, bad, missing, or not checked.
    signature: str = ""
    signature_ok: bool = True

    @property
    def ok(self) -> bool:
        return not (self.problem or self.mismatched or self.missing or self.extra
                    or self.failures) and self.signature_ok

    def lines(self) -> list[str]:
        """Human-readable findings, one per line."""
        if self.problem:
            return [f"ERROR {self.problem}"]
        out = [self.signature] if self.signature else []
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


def verify_directory(directory: Path, key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check every file the manifest lists (size and SHA-256) and look for unlisted files;
    with ``key``, also that ``manifest.sig`` is that key's signature of the manifest."""
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
        digest = sha256_of_path(path).hexdigest()
        if digest != entry.sha256:
            report.mismatched.append(entry.name)
            report.details[entry.name] = f"sha256 {digest}, manifest says {entry.sha256}"
    names = {entry.name for entry in listed} | {MANIFEST_NAME, SIGNATURE_NAME}
    report.extra = sorted(p.name for p in directory.iterdir() if p.name not in names)
    _check_signature(report, directory, data, key)
    return report


def _check_signature(report: VerifyReport, directory: Path, manifest: bytes,
                     key: Ed25519PublicKey | None) -> None:
    sig_path = directory / SIGNATURE_NAME
    if key is None:
        if sig_path.exists():
            report.signature = f"UNCHECKED {SIGNATURE_NAME} (give --key PEM to check it)"
        return
    where = f"key {signing.fingerprint(key)}"
    try:
        signature = sig_path.read_bytes()
    except FileNotFoundError:
        report.signature, report.signature_ok = (
            f"MISSING {SIGNATURE_NAME}: the manifest is not signed", False)
        return
    except OSError as exc:
        report.signature, report.signature_ok = (
            f"ERROR cannot read {sig_path}: {exc.strerror}", False)
        return
    if signing.verify(key, manifest, signature):
        report.signature = f"SIGNATURE OK {MANIFEST_NAME} signed by {where}"
    else:
        report.signature, report.signature_ok = (
            f"SIGNATURE BAD {MANIFEST_NAME} is not what {where} signed "
            "(changed after signing, or another key)", False)
