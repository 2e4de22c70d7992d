"""A full disk for one block of code: RLIMIT_FSIZE makes writes past a size fail with EFBIG.

Export files are never opened through symlinks, so the old trick (a symlink to /dev/full)
no longer reaches the writer; a file size limit fails the same ``write`` calls instead.
"""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def file_size_limit(limit_bytes: int) -> Iterator[None]:
    """Writes that would grow a file past ``limit_bytes`` fail with EFBIG (SIGXFSZ ignored)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
