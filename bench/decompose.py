"""``python -m bench.decompose``: where the B1 export time goes, without the server.

On the B1 range, in this process, interleaved, 6 rounds (the first warms the page cache):

- ``cut()`` with fsync and without (the worker's whole job: open, demux, mux, write, hash),
  and with fsync but its MP4 header not told in advance (so hashed by reading the file back
  at the end, as before ``media/endplan.py``);
- the floor's pass (bench/floor.py: read + write + SHA-256 + fsync);
- opening every source segment alone (``av.open``: the demuxer reads the header and FFmpeg's
  stream probing decodes a first frame), opening them from the header alone as the cut opens
  all but the first (``media/sourceopen.py``), and demuxing every packet without muxing;
- SHA-256 of the output alone (from memory), and write + fsync of it alone.

Prints medians (min, max) and saves them to ``bench/results/decompose.txt``. Run it with the
workers' nice level on a shared machine: ``nice -n 10 python -m bench.decompose``.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av

from bench.archive import LONG_ID, ensure_archive
from bench.floor import copy_hash_sync
from bench.report import sha_support
from bench.throughput import OUT_DIR, RANGE_S, segments_for
from sense_plugin.media import remux
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut
from sense_plugin.media.sourceopen import open_source

RESULTS = Path(__file__).resolve().parent / "results" / "decompose.txt"


def _open_all(paths: list[str]) -> None:
    for path in paths:
        with av.open(path) as source:
            _ = source.streams.video[0]


def _open_header_only(paths: list[str]) -> None:
    """As the cut opens every segment after the first (media/sourceopen.py)."""
    for path in paths:
        with open_source(path, header_only=True) as source:
            _ = source.streams.video[0]


def _demux_all(paths: list[str]) -> None:
    for path in paths:
        with av.open(path) as source:
            for _packet in source.demux(source.streams.video[0]):
                pass


def main() -> None:
    archive = ensure_archive()
    lo = archive.ranges_us[LONG_ID][0]
    hi = lo + RANGE_S * 1_000_000
    rows = segments_for(archive, LONG_ID, lo, hi)
    segs = tuple(SourceSegment(str(p), s, e) for p, s, e in rows)
    paths = [str(p) for p, _, _ in rows]
    rows_paths = [Path(p) for p in paths]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "cut.mp4"
    data = b""

    def cut_with(fsync: bool) -> Callable[[], object]:
        def run() -> None:
            cut(CutRequest(SourceRange(segs, lo, hi), str(out)), fsync=fsync)
            out.unlink()
        return run

    def cut_read_back() -> None:
        told = remux.predict_header
        remux.predict_header = lambda *args: None  # type: ignore[assignment]
        try:
            cut_with(True)()
        finally:
            remux.predict_header = told

    def floor() -> None:
        copy_hash_sync(rows_paths, OUT_DIR / "f.bin")
        (OUT_DIR / "f.bin").unlink()

    def write_fsync() -> None:
        with open(OUT_DIR / "copy.bin", "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        (OUT_DIR / "copy.bin").unlink()

    steps: dict[str, Callable[[], object]] = {
        "cut, fsync": cut_with(True),
        "cut, no fsync": cut_with(False),
        "cut, fsync, read back at the end": cut_read_back,
        "floor (read+write+sha256+fsync)": floor,
        "av.open of every segment": lambda: _open_all(paths),
        "open from the header, every segment": lambda: _open_header_only(paths),
        "demux every packet, no mux": lambda: _demux_all(paths),
        "sha256 of the output alone": lambda: hashlib.sha256(data).hexdigest(),
        "write+fsync of the output alone": write_fsync,
    }
    cut(CutRequest(SourceRange(segs, lo, hi), str(out)))
    data = out.read_bytes()
    out.unlink()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(6):
        for name, step in steps.items():
            os.sync()
            began = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - began)
    lines = [f"bench.decompose: {len(segs)} segments, {len(data)} B output; {sha_support()}; "
             f"load average {os.getloadavg()}"]
    for name, values in times.items():
        values = values[1:]  # the first round warms the page cache
        lines.append(f"{name:34}: median {statistics.median(values):.3f} s "
                     f"(min {min(values):.3f}, max {max(values):.3f})")
    text = "\n".join(lines)
    RESULTS.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
