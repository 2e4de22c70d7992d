"""``python -m bench.render``: evidence rendering against Debian's ffmpeg doing the same work.

Source: 1080p25 H.264 at 4 Mbit/s made by Debian's ffmpeg (testsrc2, x264 defaults with
B-frames), cached under bench/.cache. Work: burned-in archive timestamp, a comment line and two
solid masks, H.264 CRF 23 preset medium (our ``quality=medium``). The reference is ffmpeg's
``drawtext`` with a TTF (DejaVu Sans), ``drawbox`` and libx264 with the same preset and CRF.
Pairs alternate (ours, ffmpeg, ours, ...) so machine noise hits both; the figure is the ratio
of frame rates. Quality: video bitrate, and PSNR/SSIM of each output against the source from
ffmpeg's own ``psnr``/``ssim`` filters, over the band of the picture no overlay touches.
Both encode a keyframe every 2 s (ours always does, for seeking and splitting evidence).
Memory: the render process's RSS sampled through the run (flat = no growth with clip length).

Options: ``--seconds S`` (default 60; the issue's figure is ``--seconds 600``), ``--pairs N``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CACHE = BENCH_DIR / ".cache" / "render"
RESULTS = BENCH_DIR / "results"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
T0_US = 1_795_168_800_000_000  # 2026-11-20 10:00:00 UTC: the archive time of the source
MASKS = ((0.10, 0.20, 0.25, 0.30), (0.60, 0.55, 0.30, 0.35))
#: The band of the picture that no overlay touches (x 0.37..0.59): quality is measured there.
CLEAN = "crop=iw*0.22:ih:iw*0.37:0"


def log(text: str) -> None:
    print(text, flush=True)


def make_source(seconds: int) -> Path:
    path = CACHE / f"src-1080p25-{seconds}s.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"encoding a {seconds} s 1080p25 source with ffmpeg (cached) ...")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size=1920x1080:rate=25:duration={seconds}", "-f", "lavfi", "-i",
             f"sine=frequency=440:sample_rate=48000:duration={seconds}", "-c:v", "libx264",
             "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50",
             "-c:a", "aac", "-metadata", "creation_time=2026-11-20T10:00:00Z",
             str(path) + ".tmp.mp4"], check=True)
        Path(str(path) + ".tmp.mp4").rename(path)
    return path


def sampled(command: list[str]) -> dict[str, float]:
    """Run ``command``; wall time and its RSS (from /proc) in the first and last quarter."""
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=BENCH_DIR.parent)
    samples: list[int] = []
    while proc.poll() is None:
        samples.append(_rss_kb(proc.pid))
        time.sleep(0.25)
    wall = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(f"{command[0]} failed with exit code {proc.returncode}")
    samples = [s for s in samples if s] or [0]
    quarter = max(1, len(samples) // 4)
    return {"wall_s": wall, "rss_first_quarter_mb": max(samples[:quarter]) / 1024,
            "rss_last_quarter_mb": max(samples[-quarter:]) / 1024}


def run_ours(source: Path, out: Path, seconds: int) -> dict[str, float]:
    """Render in a child process, as the export workers do."""
    code = "import sys; from bench.render import _render_child; _render_child(*sys.argv[1:])"
    return sampled([sys.executable, "-c", code, str(source), str(out), str(seconds)])


def _render_child(source: str, out: str, seconds: str) -> None:
    from sense_plugin.media.cutspec import SourceRange, SourceSegment
    from sense_plugin.media.rendering import RenderRequest
    from sense_plugin.media.renderoptions import Comment, Mask, Rect, RenderOptions, Timestamp
    from sense_plugin.media.renderrun import render

    end_us = T0_US + int(seconds) * 1_000_000
    options = RenderOptions(
        timestamp=Timestamp(fmt="%Y-%m-%d %H:%M:%S"), comment=Comment(text="Case 4711"),
        masks=tuple(Mask(Rect(*m), "solid") for m in MASKS), quality="medium")
    source_range = SourceRange((SourceSegment(source, T0_US, end_us),), T0_US, end_us)
    render(RenderRequest(source_range, out, "mp4", options, preset="medium"), fsync=False)


def run_ffmpeg(source: Path, out: Path) -> dict[str, float]:
    boxes = ",".join(f"drawbox=x=iw*{x}:y=ih*{y}:w=iw*{w}:h=ih*{h}:color=black:t=fill"
                     for x, y, w, h in MASKS)
    size = "h*0.04"
    clock = (f"drawtext=fontfile={FONT}:fontsize={size}:fontcolor=white:box=1:"
             f"boxcolor=black@0.65:x=8:y=8:text='%{{pts\\:gmtime\\:{T0_US // 1_000_000}}}'")
    comment = (f"drawtext=fontfile={FONT}:fontsize={size}:fontcolor=white:box=1:"
               "boxcolor=black@0.65:x=8:y=h-th-8:text='Case 4711'")
    return sampled(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vf",
                    f"{boxes},{clock},{comment}", "-c:v", "libx264", "-preset", "medium",
                    "-crf", "23", "-g", "50", "-keyint_min", "50", "-c:a", "aac", str(out)])


def quality(source: Path, out: Path, seconds: int) -> dict[str, float]:
    """Bitrate, and PSNR (dB, Y) and SSIM (all) of ``out`` against ``source``."""
    text = subprocess.run(
        ["ffmpeg", "-v", "info", "-nostats", "-i", str(out), "-i", str(source), "-lavfi",
         f"[0:v]{CLEAN},split[a0][a1];[1:v]{CLEAN},split[b0][b1];[a0][b0]psnr;[a1][b1]ssim",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True).stderr
    psnr = re.search(r"PSNR y:([\d.]+)", text)
    ssim = re.search(r"SSIM .*All:([\d.]+)", text)
    video_bps = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "stream=bit_rate", "-of", "csv=p=0", str(out)],
                               capture_output=True, text=True, check=True).stdout.strip()
    return {"bitrate_kbps": int(video_bps or 0) / 1000,
            "psnr_y_db": float(psnr.group(1)) if psnr else float("nan"),
            "ssim_all": float(ssim.group(1)) if ssim else float("nan")}


def frames_of(path: Path) -> int:
    text = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                           "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0",
                           str(path)], capture_output=True, text=True, check=True).stdout
    return int(text.strip())


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None or not FONT.exists():
        log("needs Debian's ffmpeg and fonts-dejavu-core: apt-get install ffmpeg fonts-dejavu-core")
        return 2
    source = make_source(args.seconds)
    work = CACHE / "out"
    work.mkdir(parents=True, exist_ok=True)
    ours_out, ref_out = work / "ours.mp4", work / "ffmpeg.mp4"
    rounds = []
    for pair in range(args.pairs):
        ours = run_ours(source, ours_out, args.seconds)
        ref = run_ffmpeg(source, ref_out)
        log(f"pair {pair + 1}: ours {ours['wall_s']:.1f} s, ffmpeg {ref['wall_s']:.1f} s")
        rounds.append({"ours": ours, "ffmpeg": ref})
    frames = {"ours": frames_of(ours_out), "ffmpeg": frames_of(ref_out)}
    scores = {"ours": quality(source, ours_out, args.seconds),
              "ffmpeg": quality(source, ref_out, args.seconds)}
    save(rounds, frames, scores, args.seconds)
    return 0


def save(rounds: list[dict[str, dict[str, float]]], frames: dict[str, int],
         scores: dict[str, dict[str, float]], seconds: int) -> None:
    fps_ours = [frames["ours"] / r["ours"]["wall_s"] for r in rounds]
    fps_ref = [frames["ffmpeg"] / r["ffmpeg"]["wall_s"] for r in rounds]
    ratios = sorted(a / b for a, b in zip(fps_ours, fps_ref, strict=True))
    median = ratios[len(ratios) // 2]
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "render.json").write_text(json.dumps(
        {"date": date, "seconds": seconds, "frames": frames, "rounds": rounds,
         "fps_ours": fps_ours, "fps_ffmpeg": fps_ref, "speed_ratio_median": median,
         "quality": scores, "load_average_at_end": list(os.getloadavg())}, indent=2) + "\n")
    ours, ref = scores["ours"], scores["ffmpeg"]
    rss = {name: ", ".join(f"{r[name]['rss_first_quarter_mb']:.0f}/"
                           f"{r[name]['rss_last_quarter_mb']:.0f}" for r in rounds)
           for name in ("ours", "ffmpeg")}
    lines = [
        f"Render bench of {date}: {seconds} s of 1080p25, timestamp + comment + two masks, "
        "H.264 CRF 23 preset medium, against Debian's ffmpeg doing the same.", "",
        "| | ours | ffmpeg CLI |", "|---|---|---|",
        f"| frames | {frames['ours']} | {frames['ffmpeg']} |",
        "| fps per pair | " + ", ".join(f"{v:.1f}" for v in fps_ours) + " | "
        + ", ".join(f"{v:.1f}" for v in fps_ref) + " |",
        f"| video bitrate kbit/s | {ours['bitrate_kbps']:.0f} | {ref['bitrate_kbps']:.0f} |",
        f"| PSNR Y dB vs source (clean band) | {ours['psnr_y_db']:.2f} | {ref['psnr_y_db']:.2f} |",
        f"| SSIM vs source (clean band) | {ours['ssim_all']:.4f} | {ref['ssim_all']:.4f} |",
        "", f"Speed ours/ffmpeg, median of {len(ratios)} pairs: {median:.2f}x. "
        f"RSS in the first/last quarter of each run: ours {rss['ours']} MB, "
        f"ffmpeg {rss['ffmpeg']} MB.",
    ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "render.md").write_text(text)
    log(text)


if __name__ == "__main__":
    raise SystemExit(main())
