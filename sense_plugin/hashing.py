"""SHA-256 of a whole file, read in blocks: the one loop every hashing caller shares.

Blocking: callers run it in a worker process or an executor thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bytes read per call; ``hashlib`` releases the GIL for blocks this large.
READ_BYTES = 1024 * 1024


def sha256_of_fd(fd: int, *, read_bytes: int = READ_BYTES) -> hashlib._Hash:
    """The SHA-256 of an open file's bytes from offset 0 to its end.

    Reads with ``pread``, so the descriptor's position is left where it was (a descriptor
    that is about to be served stays usable).
    """
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, read_bytes, offset):
        digest.update(block)
        offset += len(block)
    return digest


def sha256_of_path(path: Path, *, read_bytes: int = READ_BYTES) -> hashlib._Hash:
    """The SHA-256 of the file at ``path``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return sha256_of_fd(fd, read_bytes=read_bytes)
    finally:
        os.close(fd)
