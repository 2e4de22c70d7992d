"""``python -m bench.split``: ``<maxfilesize>`` split in one pass vs cut-then-split (two passes).

Source: 60 s of 640x360 H.264 + AAC, 25 fps, a keyframe every second, 3 Mbit/s (written once
with ``demo.generate_device``, cached under bench/cache/split). Per output format the export is
cut with a 2 MB limit both ways, in-process (as the worker runs it), files in page cache:
before = ``remux.cut`` of the whole file, then ``split.split_file`` of it; after =
``parts.cut_parts``. Figures: bytes written per byte of output (the parts), wall time (median
of the rounds) and its ratio, how full the parts are (mean size / limit) and the container
overhead per packet that the size estimate must allow for.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sense_plugin.archive import demo
from sense_plugin.media.cutspec import CutRequest, SourceRange, SourceSegment
from sense_plugin.media.parts import cut_parts
from sense_plugin.media.remux import cut
from sense_plugin.media.split import split_file
from sense_plugin.naming import parse_segment_filename

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
T0_US = 1_700_000_000_000_000
SECONDS = 60
LIMIT = 2_000_000


def source() -> tuple[SourceSegment, ...]:
    directory = BENCH / "cache" / "split"
    if not directory.exists() or not any(directory.iterdir()):
        tmp = directory.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        demo.generate_device(tmp, name="SPLIT", start_us=T0_US, end_us=T0_US + SECONDS * 10**6,
                             segment_s=10, width=640, height=360, fps=25, gop_frames=25,
                             bitrate_bps=3_000_000, audio=True)
        tmp.rename(directory)
    paths = sorted(directory.iterdir())
    starts = [parse_segment_filename(p.name) or 0 for p in paths]
    ends = [*starts[1:], T0_US + SECONDS * 10**6]
    return tuple(SourceSegment(str(p), s, e) for p, s, e in zip(paths, starts, ends, strict=True))


def payload_of(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as container:
        sizes = [p.size for p in container.demux() if p.size]
    return sum(sizes), len(sizes)


def two_pass(segments: tuple[SourceSegment, ...], out: Path, fmt: str) -> tuple[int, list[int]]:
    request = CutRequest(SourceRange(segments, T0_US, T0_US + SECONDS * 10**6), str(out), fmt,
                         title="SPLIT")
    result = cut(request, fsync=False)
    parts = split_file(str(out), result, fmt, LIMIT, "SPLIT", 1, "SPLIT", "", lambda: False)
    whole = out.stat().st_size
    out.unlink()
    return whole + sum(p.size_bytes for p in parts), [p.size_bytes for p in parts]


def one_pass(segments: tuple[SourceSegment, ...], out: Path, fmt: str) -> tuple[int, list[int]]:
    request = CutRequest(SourceRange(segments, T0_US, T0_US + SECONDS * 10**6), str(out), fmt,
                         title="SPLIT")
    _, parts = cut_parts(request, LIMIT, device_id=1, fsync=False)
    sizes = [p.size_bytes for p in parts]
    return sum(sizes), sizes


def measure(fmt: str, rounds: int, segments: tuple[SourceSegment, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for label, run in (("before", two_pass), ("after", one_pass)):
        times, written, sizes = [], 0, []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                written, sizes = run(segments, Path(tmp) / f"out.{fmt}", fmt)
                times.append(time.perf_counter() - started)
                if label == "after":
                    parts = sorted(Path(tmp).iterdir())
                    payload, packets = map(sum, zip(*(payload_of(p) for p in parts),
                                                    strict=True))
                    row["overhead_per_packet"] = (sum(sizes) - payload) / packets
        output = sum(sizes)
        row[label] = {"seconds": statistics.median(times), "bytes_written": written,
                      "output_bytes": output, "written_per_output_byte": written / output,
                      "parts": len(sizes), "largest": max(sizes),
                      "fill": statistics.mean(sizes[:-1]) / LIMIT if len(sizes) > 1 else 0}
    row["time_ratio"] = row["after"]["seconds"] / row["before"]["seconds"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.split")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    segments = source()
    rows = {fmt: measure(fmt, args.rounds, segments) for fmt in ("mp4", "mkv", "ts")}
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "split.json").write_text(json.dumps({"date": date, "rounds": args.rounds,
                                                    "limit": LIMIT, "results": rows},
                                                   indent=2) + "\n")
    lines = [f"Split bench of {date}: {SECONDS} s of 640x360 H.264+AAC at 3 Mbit/s, "
             f"limit {LIMIT // 10**6} MB, median of {args.rounds} rounds, page cache.", "",
             "| format | written/output before | after | seconds before | after | ratio "
             "| parts | largest | fill | overhead B/packet |", "|---" * 10 + "|"]
    for fmt, r in rows.items():
        b, a = r["before"], r["after"]
        lines.append(f"| {fmt} | {b['written_per_output_byte']:.2f} | "
                     f"{a['written_per_output_byte']:.2f} | {b['seconds']:.3f} | "
                     f"{a['seconds']:.3f} | {r['time_ratio']:.2f} | {a['parts']} "
                     f"({b['parts']}) | {a['largest']} | {a['fill']:.2f} | "
                     f"{r['overhead_per_packet']:.1f} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "split.md").write_text(text)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
