"""``sense-plugin verify DIR [--key PEM] [--unsigned]``: which export a directory holds, its
files re-hashed against the manifest, and the manifest's Ed25519 signature (docs/verify.rst)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from lxml import etree

from sense_plugin import signing
from sense_plugin.export.manifest import (
    MANIFEST_NAME,
    device_failures,
    parse_manifest,
)
from sense_plugin.hashing import sha256_of_fd
from sense_plugin.signing import SIGNATURE_NAME

#: Files are opened without following a symlink: a link is reported, never read through.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass
class VerifyReport:
    """What ``verify`` found; ``ok`` only when every listed file matches, nothing is extra,
    no symlink is met and the signature is good (or its absence was accepted)."""

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
    #: Which export the manifest describes: one ``EXPORT`` line and one ``DEVICE`` line each.
    identity: list[str] = field(default_factory=list)
    #: Findings that do not fail the check (a directory named unlike its export).
    warnings: list[str] = field(default_factory=list)
    #: Symbolic links met in the directory (name → target); each fails the check.
    symlinks: dict[str, str] = field(default_factory=dict)
    #: One line about the signature: checked and good, bad, missing, or not checked.
    signature: str = ""
    signature_ok: bool = True

    @property
    def ok(self) -> bool:
        return not (self.problem or self.mismatched or self.missing or self.extra
                    or self.failures or self.symlinks) and self.signature_ok

    def lines(self) -> list[str]:
        """Human-readable findings, one per line."""
        if self.problem:
            return [f"ERROR {self.problem}"]
        out = [*self.identity, *(f"WARNING {w}" for w in self.warnings)]
        out += [self.signature] if self.signature else []
        out += [f"SYMLINK {name} -> {target} (not followed)"
                for name, target in sorted(self.symlinks.items())]
        out += [f"MISMATCH {m} ({self.details.get(m, '')})" for m in self.mismatched]
        out += [f"MISSING {name}" for name in self.missing]
        out += [f"EXTRA {name}" for name in self.extra]
        bad = set(self.mismatched) | set(self.missing) | set(self.symlinks)
        out += [f"OK {name}" for name in self.checked if name not in bad]
        if self.failures:
            out.append(f"EXPORT {self.status}: {len(self.failures)} of {self.devices} devices "
                       "failed; their errors as the manifest records them:")
            out += [f"FAILED {line}" for line in self.failures]
        return out


def verify_directory(directory: Path, key: Ed25519PublicKey | None = None, *,
                     unsigned: bool = False) -> VerifyReport:
    """Check every file the manifest lists (size and SHA-256) and look for unlisted files;
    ``manifest.sig`` must be there unless ``unsigned``; with ``key`` it must be that key's
    signature of the manifest. Nothing is read through a symlink."""
    report = VerifyReport()
    if directory.is_symlink():
        report.symlinks[str(directory)] = os.readlink(directory)
    manifest_path = directory / MANIFEST_NAME
    try:
        data = _read(manifest_path)
        listed = parse_manifest(data)
        report.status, report.devices, report.failures = device_failures(data)
    except OSError as exc:
        report.problem = f"cannot read {manifest_path}: {_reason(exc, manifest_path)}"
        return report
    except ValueError as exc:
        report.problem = f"{manifest_path}: {exc}"
        return report
    _identify(report, directory, data)
    for entry in listed:
        report.checked.append(entry.name)
        _check_file(report, directory / entry.name, entry.size_bytes, entry.sha256)
    names = {entry.name for entry in listed} | {MANIFEST_NAME, SIGNATURE_NAME}
    for path in sorted(directory.iterdir()):
        if path.is_symlink():
            report.symlinks[path.name] = os.readlink(path)
        if path.name not in names:
            report.extra.append(path.name)
    _check_signature(report, directory, data, key, unsigned)
    return report


def _read(path: Path, limit_bytes: int = -1) -> bytes:
    """The file (all of it by default: manifests have no size limit, docs/security.rst,
    "Manifest size"), opened without following a symlink."""
    fd = os.open(path, _READ_FLAGS)
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(0, "not a regular file")
        os.set_blocking(fd, True)
        return stream.read(limit_bytes)


def _reason(exc: OSError, path: Path) -> str:
    if path.is_symlink():
        return f"it is a symlink to {os.readlink(path)} (not followed)"
    return exc.strerror or str(exc)


def _check_file(report: VerifyReport, path: Path, size_bytes: int, sha256: str) -> None:
    name = path.name
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        if not path.is_symlink():  # a symlink is reported by the directory listing
            report.missing.append(name)
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            report.missing.append(name)
            return
        os.set_blocking(fd, True)
        if st.st_size != size_bytes:
            report.mismatched.append(name)
            report.details[name] = f"size {st.st_size}, manifest says {size_bytes}"
            return
        digest = sha256_of_fd(fd).hexdigest()
    finally:
        os.close(fd)
    if digest != sha256:
        report.mismatched.append(name)
        report.details[name] = f"sha256 {digest}, manifest says {sha256}"


def _identify(report: VerifyReport, directory: Path, data: bytes) -> None:
    """The export the manifest names (id, owner, path, device ranges), and a warning when the
    directory is not named after it (``<exportid>`` on the server, ``export-<exportid>`` as
    the command-line client downloads it)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    export_id = root.findtext("exportid") or "?"
    report.identity.append(f"EXPORT {export_id} owner {root.findtext('owner') or '?'} "
                           f"path '{root.findtext('path') or ''}' status {report.status}")
    for device in root.iterfind("devices/device"):
        report.identity.append(
            f"DEVICE {device.findtext('deviceid')} ({device.findtext('name')}) "
            f"{device.findtext('starttime')} to {device.findtext('endtime')}: "
            f"{device.findtext('status')}")
    name = directory.resolve().name if directory.name in ("", ".", "..") else directory.name
    if name not in (export_id, f"export-{export_id}"):
        report.warnings.append(
            f"this directory ({name}) is not named after export {export_id}, which its "
            f"manifest describes: the files may have been moved from another export's directory")


def _check_signature(report: VerifyReport, directory: Path, manifest: bytes,
                     key: Ed25519PublicKey | None, unsigned: bool) -> None:
    sig_path = directory / SIGNATURE_NAME
    try:
        signature = _read(sig_path, 1024)
    except FileNotFoundError:
        if unsigned:
            report.signature = f"UNSIGNED {MANIFEST_NAME}: no {SIGNATURE_NAME}, accepted " \
                "(--unsigned)"
        else:
            report.signature, report.signature_ok = (
                f"MISSING {SIGNATURE_NAME}: the manifest is not signed (give --unsigned to "
                "accept an unsigned export)", False)
        return
    except OSError as exc:
        report.signature, report.signature_ok = (
            f"ERROR cannot read {sig_path}: {_reason(exc, sig_path)}", False)
        return
    if key is None:
        report.signature = f"UNCHECKED {SIGNATURE_NAME} (give --key PEM to check it)"
        return
    where = f"key {signing.fingerprint(key)}"
    if signing.verify(key, manifest, signature):
        report.signature = f"SIGNATURE OK {MANIFEST_NAME} signed by {where}"
    else:
        report.signature, report.signature_ok = (
            f"SIGNATURE BAD {MANIFEST_NAME} is not what {where} signed "
            "(changed after signing, or another key)", False)
