"""``python -m bench.decompose``: where the B1 sense time goes, without the server.

Runs ``remux.cut()`` in this process on the B1 range (fsync on and off, and with the hash in the
writing thread as before 4f733ff), times a single-thread SHA-256 of the output and ``os.fsync``
of a copy; 5 times each after a warm-up, interleaved; prints medians.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time

from bench.archive import LONG_ID, ensure_archive
from bench.throughput import OUT_DIR, RANGE_S, segments_for
from sense_plugin.media import sink
from sense_plugin.media.remux import CutRequest, SourceSegment, cut


class _InlineHash:
    """The sink's hashing before 4f733ff: in the writing thread (for an A/B of that change)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.hash.update(data)

    def finish(self):  # noqa: ANN201
        return self.hash


def main() -> None:
    archive = ensure_archive()
    lo = archive.ranges_us[LONG_ID][0]
    hi = lo + RANGE_S * 1_000_000
    segs = tuple(SourceSegment(str(p), s, e) for p, s, e in segments_for(archive, LONG_ID, lo, hi))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = str(OUT_DIR / "cut.mp4")
    times: dict[str, list[float]] = {"cut, fsync": [], "cut, no fsync": [],
                                     "cut, fsync, inline hash": [], "sha256 alone": [],
                                     "write+fsync alone": []}
    threaded = sink._HashThread
    for _ in range(6):
        for name, fsync, hasher in (("cut, fsync", True, threaded),
                                    ("cut, no fsync", False, threaded),
                                    ("cut, fsync, inline hash", True, _InlineHash)):
            sink._HashThread = hasher
            os.sync()
            t0 = time.perf_counter()
            cut(CutRequest(segs, lo, hi, out), fsync=fsync)
            times[name].append(time.perf_counter() - t0)
        sink._HashThread = threaded
        data = open(out, "rb").read()  # noqa: SIM115
        t0 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        times["sha256 alone"].append(time.perf_counter() - t0)
        os.sync()
        t0 = time.perf_counter()
        with open(out + ".copy", "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        times["write+fsync alone"].append(time.perf_counter() - t0)
        os.unlink(out + ".copy")
    os.unlink(out)
    for name, values in times.items():
        values = values[1:]  # first round warms the page cache
        print(f"{name:24}: median {statistics.median(values):.3f} s "
              f"(min {min(values):.3f}, max {max(values):.3f})")


if __name__ == "__main__":
    main()
