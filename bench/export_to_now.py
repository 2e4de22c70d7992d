"""How long after ``now`` an export ending ``now`` completes (docs/evidence.rst, "The end").

``python3 -m bench.export_to_now [--exports 5] [--segment-s 60] [--code DIR] [--label NAME]``

A real ``sense-plugin serve`` records one camera: a 1280x720 25 fps H.264 clip (4 Mbit/s, a
keyframe every 2 s) read as a file source at real time, in ``--segment-s`` segments (60 s,
the default of ``[archive] segment_seconds``). Every few seconds, at different places in the
segment being recorded, an export of ``[now - 30 s, now)`` is created (what ``export --from
now-30s --to now`` sends) and polled every 50 ms until COMPLETED. Figures per export: seconds
from ``now`` to COMPLETED, how far the file's last frame lies before the end, and the gaps it
lists. ``--code DIR`` runs the server from another checkout (PYTHONPATH), to compare.

Results go to ``bench/results/export-to-now-<label>.json`` (and are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.archive import CACHE_DIR
from bench.report import machine
from bench.server import Server, fmt_ts
from sense_plugin.timestamps import parse_timestamp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEVICE = 9890179877273119875
CLIP_S = 300


def make_clip() -> Path:
    """The camera's clip (cached in bench/cache/)."""
    clip = CACHE_DIR / "cam-720p-4M-now.mp4"
    if clip.exists():
        return clip
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=25", "-t", str(CLIP_S), "-c:v", "libx264",
                    "-preset", "ultrafast", "-b:v", "4M", "-g", "50", "-bf", "0",
                    "-f", "mp4", str(clip) + ".part"], check=True, capture_output=True,
                   timeout=900)
    os.replace(str(clip) + ".part", clip)
    return clip


def write_config(work: Path, clip: Path, segment_s: float) -> Path:
    config = work / "server.toml"
    config.write_text("\n".join([
        "[server]", 'serverid = "7015498111931795223"', f'data_dir = "{work / "data"}"', "",
        "[archive]", "demo = false", f"segment_seconds = {segment_s}", "",
        "[[devices]]", f'deviceid = "{DEVICE}"', 'name = "cam"', f'source = "{clip}"', ""]))
    return config


def run(exports: int, segment_s: float, label: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sense-bench-now-"))
    try:
        clip = make_clip()
        server = Server(write_config(work, clip, segment_s), work / "data", name="export-to-now")
        try:
            client = server.client()
            time.sleep(8)  # the recording begins
            rows = []
            for i in range(exports):
                time.sleep(3 + 7 * i % 11)  # another place in the segment being recorded
                end_us = time.time_ns() // 1000
                export_id = client.create([(DEVICE, end_us - 30_000_000, end_us)])
                done = client.wait(export_id, poll_s=0.05, timeout_s=180)
                after_s = time.time() - end_us / 1e6
                file = done.find("exports/export/devices/device/files/file")
                assert file is not None
                last_us = parse_timestamp(file.findtext("endtime") or "")
                gaps = [(g.findtext("starttime"), g.findtext("endtime"), g.get("reason"))
                        for g in file.iterfind("gaps/gap")]
                rows.append({"end": fmt_ts(end_us), "completed_after_s": round(after_s, 2),
                             "last_frame_before_end_s": round((end_us - last_us) / 1e6, 3),
                             "gaps": gaps})
                print(rows[-1], flush=True)
                client.remove(export_id)
            client.close()
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    after = sorted(r["completed_after_s"] for r in rows)
    result = {"label": label, "machine": machine(), "segment_s": segment_s,
              "recipe": "1280x720 25 fps H.264 4 Mbit/s, GOP 2 s, file source at real time; "
                        "exports of [now-30 s, now)",
              "median_completed_after_s": after[len(after) // 2], "max_completed_after_s":
              after[-1], "exports": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"export-to-now-{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.export_to_now")
    parser.add_argument("--exports", type=int, default=5)
    parser.add_argument("--segment-s", type=float, default=60)
    parser.add_argument("--code", type=Path, help="run the server from this checkout")
    parser.add_argument("--label", default="latest")
    args = parser.parse_args()
    if args.code is not None:  # ``-m`` puts the working directory first: run from there
        os.environ["PYTHONPATH"] = str(args.code.resolve())
        os.chdir(args.code)
    result = run(args.exports, args.segment_s, args.label)
    print(json.dumps({k: result[k] for k in ("label", "median_completed_after_s",
                                             "max_completed_after_s")}))


if __name__ == "__main__":
    main()
