"""The floor of an export: one pass that reads the segments, writes one file, hashes and syncs.

What any stream-copy export of those segments must at least do on this CPU and disk: read every
source byte, write as many to one new file, SHA-256 them (``hashlib``, OpenSSL: with the CPU's
SHA instructions when it has them) and ``fsync`` the file. Single-threaded, 1 MiB blocks, no
parsing at all. ``python -m bench.floor OUT SEGMENT...`` prints the seconds and the digest.

``python -m bench.floor --go OUT SEGMENT...`` (used by ``bench/jobs.py`` to start several floors
at once) prints ``ready`` once started up, waits for a line on its standard input, and prints
the ``time.monotonic()`` at which its pass ended (the clock is the same in every process).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BLOCK_BYTES = 1024 * 1024


def copy_hash_sync(sources: Sequence[Path], out: Path) -> tuple[int, str]:
    """Concatenate ``sources`` into ``out`` (created anew), hashing and fsyncing it.

    Returns the bytes written and the hex SHA-256.
    """
    digest = hashlib.sha256()
    written = 0
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for source in sources:
            with open(source, "rb", buffering=0) as handle:
                while block := handle.read(BLOCK_BYTES):
                    view = memoryview(block)
                    while view:  # a short write is possible in principle
                        view = view[os.write(fd, view):]
                    digest.update(block)
                    written += len(block)
        os.fsync(fd)
    finally:
        os.close(fd)
    return written, digest.hexdigest()


def main(argv: Sequence[str]) -> int:
    go = bool(argv) and argv[0] == "--go"
    if go:
        argv = argv[1:]
    if len(argv) < 2:
        print("usage: python -m bench.floor [--go] OUT SEGMENT...", file=sys.stderr)
        return 2
    out, sources = Path(argv[0]), [Path(p) for p in argv[1:]]
    if go:
        print("ready", flush=True)
        sys.stdin.readline()
        copy_hash_sync(sources, out)
        print(f"{time.monotonic():.6f}", flush=True)
        return 0
    started = time.perf_counter()
    size, sha256 = copy_hash_sync(sources, out)
    print(f"{time.perf_counter() - started:.3f} s  {size} B  {sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
