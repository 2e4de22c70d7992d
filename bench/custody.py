"""``python -m bench.custody``: the cost of the chain of custody's storage and case bundle.

1. Audit records appended one at a time to the SQLite job store (each its own fsync'd
   transaction, as the server appends them), then the whole chain read back and verified.
2. A case bundle of four 64 MB files: laying it out the first time (CRC-32 of every file read
   from disk), again (CRCs remembered), and reading all of its bytes, against reading the
   same files plainly. The files were just written, so they are in the page cache: these are
   CPU figures (a cold disk adds one read of every file to the first layout).

Writes ``bench/results/custody.txt``. No test asserts on these numbers.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.archive import BENCH_DIR
from sense_plugin.export import audit, bundle
from sense_plugin.export.audit import Actor, ListedRecord, first_broken
from sense_plugin.export.custodydb import SqliteCustodyStore
from sense_plugin.export.custodystore import AuditQuery
from sense_plugin.timestamps import format_timestamp

RESULTS = BENCH_DIR / "results" / "custody.txt"
RECORDS = 2000
FILE_MB = 64
FILES = 4


async def audit_figures(directory: Path) -> list[str]:
    store = SqliteCustodyStore(directory / "exports.sqlite3")
    await store.open()
    began = time.perf_counter()
    for n in range(RECORDS):
        await store.append_audit(audit.entry("download", n % 50 + 1, f"file=cam_{n}.mp4",
                                             Actor("operator", "192.0.2.10")))
    append_s = time.perf_counter() - began
    began = time.perf_counter()
    records, _ = await store.audit_page(AuditQuery())
    listed = [ListedRecord(str(r.seq), format_timestamp(r.time_us), r.user, r.address,
                           r.action, str(r.export_id), r.detail, r.hash) for r in records]
    assert first_broken(listed) is None
    verify_s = time.perf_counter() - began
    await store.close()
    return [f"audit: {RECORDS} appends, one at a time: {append_s:.2f} s "
            f"({RECORDS / append_s:.0f}/s, {append_s / RECORDS * 1000:.2f} ms each)",
            f"audit: read and verify {RECORDS} records: {verify_s * 1000:.0f} ms"]


def bundle_figures(directory: Path) -> list[str]:
    paths = []
    for n in range(FILES):
        path = directory / f"cam{n}.mp4"
        with path.open("wb") as out:
            for _ in range(FILE_MB):
                out.write(os.urandom(1 << 20))
        paths.append(path)
    total_mb = FILES * FILE_MB
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    try:
        members = [bundle.Member(p.name, os.fstat(fd).st_size, fd=fd)
                   for p, fd in zip(paths, fds, strict=True)]
        crcs = bundle.CrcMemo()
        began = time.perf_counter()
        bundle.layout(members, crcs)
        cold_s = time.perf_counter() - began
        began = time.perf_counter()
        pieces, size = bundle.layout(members, crcs)
        warm_s = time.perf_counter() - began
        began = time.perf_counter()
        sent = sum(len(b) for b in bundle.blocks(pieces, 0, size - 1))
        stream_s = time.perf_counter() - began
        began = time.perf_counter()
        plain = sum(len(os.pread(fd, bundle.READ_BYTES, at)) for fd in fds
                    for at in range(0, FILE_MB << 20, bundle.READ_BYTES))
        plain_s = time.perf_counter() - began
    finally:
        for fd in fds:
            os.close(fd)
    assert sent == size and plain == total_mb << 20
    return [f"bundle of {FILES} x {FILE_MB} MB: layout with CRCs read: {cold_s:.2f} s "
            f"({total_mb / cold_s:.0f} MB/s); remembered: {warm_s * 1000:.1f} ms",
            f"bundle: reading all {size / 1e6:.0f} MB of it: {stream_s:.2f} s "
            f"({total_mb / stream_s:.0f} MB/s); the files plainly: {plain_s:.2f} s "
            f"({total_mb / plain_s:.0f} MB/s)"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-custody-") as tmp:
        lines = asyncio.run(audit_figures(Path(tmp)))
        lines += bundle_figures(Path(tmp))
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
