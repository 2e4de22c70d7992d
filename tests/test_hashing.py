"""The one SHA-256 file helper: whole file, any block size, descriptor position untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sense_plugin.hashing import sha256_of_fd, sha256_of_path


@pytest.mark.parametrize("size", [0, 1, 4096, 3 * 4096 + 17])
def test_digest_of_a_path_and_of_a_descriptor(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_of_path(path, read_bytes=4096).hexdigest() == want
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, size // 2, os.SEEK_SET)
        assert sha256_of_fd(fd, read_bytes=4096).hexdigest() == want
        assert os.lseek(fd, 0, os.SEEK_CUR) == size // 2  # pread: position kept
    finally:
        os.close(fd)


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sha256_of_path(tmp_path / "nope")
