"""Readers of ZIP archives that owe nothing to ``export/bundle.py``: Info-ZIP's ``unzip`` and
libarchive's ``bsdtar`` (Debian packages ``unzip`` and ``libarchive-tools``), next to Python's
``zipfile`` in the tests themselves.

``unzip`` reads the central directory (and the ZIP64 end record and extra fields), ``bsdtar``
reading from a pipe has only the local headers, so together they check both halves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sense_plugin.export.bundle import Piece, blocks

needs_readers = pytest.mark.skipif(
    shutil.which("unzip") is None or shutil.which("bsdtar") is None,
    reason="needs unzip and bsdtar (Debian: unzip libarchive-tools)")


def unzip_test(path: Path) -> str:
    """``unzip -t``: every member's CRC checked; its listing, which must say no errors."""
    done = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True,
                          errors="replace", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"No errors detected in compressed data of {path}." in done.stdout
    return done.stdout


def unzip_member(path: Path, name: str) -> bytes:
    """One member's bytes as ``unzip -p`` extracts them."""
    return subprocess.run(["unzip", "-p", str(path), name], capture_output=True,
                          check=True).stdout


def zipinfo_versions(path: Path) -> dict[str, str]:
    """``zipinfo -v``'s "minimum software version required to extract", by member name."""
    listing = subprocess.run(["zipinfo", "-v", str(path)], capture_output=True, text=True,
                             errors="replace", check=True).stdout
    versions, name = {}, ""
    lines = listing.splitlines()
    for at, line in enumerate(lines):
        if "offset of local header from start of archive:" in line:
            name = lines[at - 2].strip()  # the entry's name, then a blank line
        elif "minimum software version required to extract:" in line:
            versions[name] = line.split(":")[-1].strip()
    return versions


def bsdtar_stream(path: Path, name: str) -> bytes:
    """One member's bytes as ``bsdtar`` extracts them from a pipe (local headers only)."""
    with path.open("rb") as source:
        return subprocess.run(["bsdtar", "-xOf", "-", name], stdin=source,
                              capture_output=True, check=True).stdout


def write_sparse(pieces: list[Piece], size: int, path: Path) -> None:
    """The archive's bytes into ``path``, runs of zeros left as holes (a 4 GiB member that is
    a sparse file costs no disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        at = 0
        for data in blocks(pieces, 0, size - 1):
            if data != bytes(len(data)):
                os.pwrite(fd, data, at)
            at += len(data)
        os.ftruncate(fd, at)
    finally:
        os.close(fd)
