"""Recorder capacity, G.711 → AAC transcode cost, and a recording soak.

``python3 -m bench.recorder [capacity|kinds|transcode|soak|all] [--counts 1,4,16,32,64]
[--seconds 20] [--soak-s 60] [--kind-cameras 8]``

- capacity: N cameras, each a GStreamer RTSP client pipeline (tests/rtsp_server.py, run by
  /usr/bin/python3) playing one ffmpeg-made clip at real time: 1280x720 25 fps H.264 at
  4 Mbit/s with G.711 µ-law audio. N :class:`Recorder` threads in this process record for
  ``--seconds``. Figures: CPU of the recorder process per camera, CPU of the RTSP server,
  video frames recorded vs the frames the recorded span must hold (lost = the difference, and
  holes longer than 1.5 frames), audio recorded (as AAC) vs the span.
- kinds: the cost per camera of each kind of source, ``--kind-cameras`` cameras of one kind
  at a time for ``--seconds``: ``h264`` (the capacity clip, the reference), ``reconnect``
  (a 6 s clip: the source ends and the recorder reconnects every ~7 s), ``resize`` (MPEG-TS
  over RTSP whose picture changes 1280x720 ↔ 640x360 every 3 s: a segment is closed and a
  keyframe decoded at each change) and ``mjpeg`` (1280x720 JPEGs at 10 fps over HTTP from
  bench/mjpeg_server.py, stamped by arrival). Figures: recorder CPU per camera, the source
  server's CPU, frames and segments recorded per camera.
- transcode: decode G.711 µ-law and encode AAC (:class:`AacTranscoder`, what an export to any
  container does) for 10 minutes of audio; seconds per hour of audio.
- soak: 16 cameras recording, a 10 s export (real ``cut``) of the newest footage every 10 s,
  old segments deleted as they pass 60 s of age: RSS and open descriptors of the recorder
  process and of the RTSP server at start and end, frames lost. The documented full run is
  ``python3 -m bench.recorder soak --soak-s 1800``.

Results go to ``bench/results/recorder-latest.json`` (and are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import av

from bench.report import machine
from sense_plugin.archive.recorder import Recorder
from sense_plugin.media.audio import AacTranscoder
from sense_plugin.media.cutspec import SourceRange
from sense_plugin.media.remux import CutRequest, SourceSegment, cut
from sense_plugin.naming import parse_segment_filename

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "rtsp_server.py"
RESULTS = ROOT / "bench" / "results"
WORK = Path(tempfile.gettempdir()) / "sense-bench-recorder"
FPS = 25
CLIP_S = 60
MJPEG_FPS = 10


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=900)


def make_clip() -> Path:
    """720p25 H.264 at 4 Mbit/s with G.711 µ-law, in Matroska (cached)."""
    clip = WORK / "cam-720p-4M-pcmu.mkv"
    if not clip.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
              f"testsrc2=size=1280x720:rate={FPS}", "-f", "lavfi", "-i",
              "sine=frequency=440:sample_rate=8000", "-t", str(CLIP_S), "-c:v", "libx264",
              "-preset", "ultrafast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M",
              "-g", "50", "-bf", "0", "-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1",
              str(clip) + ".part.mkv"])
        os.replace(str(clip) + ".part.mkv", clip)
    return clip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RtspServer:
    """tests/rtsp_server.py serving ``count`` mounts of one clip (``kind``: its pipeline);
    ``kind="mjpeg"`` runs bench/mjpeg_server.py instead (one HTTP camera per URL path)."""

    def __init__(self, clip: Path, count: int, kind: str = "h264-pcmu") -> None:
        self.port = _free_port()
        if kind == "mjpeg":
            args = [str(ROOT / "bench" / "mjpeg_server.py"), str(self.port), str(clip),
                    str(MJPEG_FPS)]
            self.urls = [f"http://127.0.0.1:{self.port}/cam{i}" for i in range(count)]
        else:
            args = [str(SERVER), str(self.port), *[f"cam{i}={kind}:{clip}" for i in range(count)]]
            self.urls = [f"rtsp://127.0.0.1:{self.port}/cam{i}" for i in range(count)]
        self.proc = subprocess.Popen(["/usr/bin/python3", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"source server did not start: {line!r}")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_fds(self) -> tuple[int, int]:
        return _rss_fds(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _rss_fds(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS"))
    return rss_kb // 1024, len(os.listdir(f"/proc/{pid}/fd"))


class Recorders:
    """N recorders in threads of this process, as the server runs them."""

    def __init__(self, urls: list[str], root: Path, segment_s: float) -> None:
        self.segments: list[list[Path]] = [[] for _ in urls]
        self.recorders = [Recorder(url, root / f"cam{i}", segment_s=segment_s,
                                   on_segment=self.segments[i].append, name=f"cam{i}")
                          for i, url in enumerate(urls)]
        self.threads = [threading.Thread(target=r.run, daemon=True) for r in self.recorders]
        for thread in self.threads:
            thread.start()

    def wait_recording(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(r.is_recording for r in self.recorders):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not recording: {[r.status for r in self.recorders]}")
            time.sleep(0.1)

    def stop(self) -> None:
        for recorder in self.recorders:
            recorder.stop()
        for thread in self.threads:
            thread.join(20)


def count_frames(paths: list[Path]) -> dict[str, float]:
    """Frames recorded, frames the recorded span holds at 25 fps, holes, audio seconds."""
    frames, holes, audio_us = 0, 0, 0
    stamps: list[int] = []
    for path in sorted(paths):
        start = parse_segment_filename(path.name) or 0
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            zero = video.start_time or 0
            for packet in container.demux():
                if not packet.size or packet.pts is None or packet.time_base is None:
                    continue
                if packet.stream.type == "video":
                    stamps.append(start + int((packet.pts - zero) * packet.time_base * 1e6))
                    frames += 1
                elif packet.duration:
                    audio_us += int(packet.duration * packet.time_base * 1e6)
    stamps.sort()
    frame_us = 1_000_000 // FPS
    holes = sum(1 for a, b in zip(stamps, stamps[1:], strict=False) if b - a > 1.5 * frame_us)
    span_frames = round((stamps[-1] - stamps[0]) / frame_us) + 1 if stamps else 0
    return {"frames": frames, "expected": span_frames, "holes": holes,
            "lost": max(0, span_frames - frames), "audio_s": audio_us / 1e6,
            "span_s": span_frames / FPS}


def capacity_step(clip: Path, count: int, seconds: float) -> dict[str, float]:
    root = WORK / f"cap-{count}"
    shutil.rmtree(root, ignore_errors=True)
    server = RtspServer(clip, count)
    try:
        recorders = Recorders(server.urls, root, segment_s=5.0)
        try:
            recorders.wait_recording()
            cpu0, srv0, wall0 = time.process_time(), server.cpu_s(), time.monotonic()
            time.sleep(seconds)
            cpu1, srv1, wall1 = time.process_time(), server.cpu_s(), time.monotonic()
        finally:
            recorders.stop()
    finally:
        server.close()
    wall = wall1 - wall0
    per_cam = [count_frames(paths) for paths in recorders.segments]
    return {
        "cameras": count, "seconds": round(wall, 1),
        "recorder_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
        "recorder_cpu_pct_per_camera": round(100 * (cpu1 - cpu0) / wall / count, 2),
        "rtsp_server_cpu_pct": round(100 * (srv1 - srv0) / wall, 1),
        "frames_lost": int(sum(c["lost"] for c in per_cam)),
        "holes": int(sum(c["holes"] for c in per_cam)),
        "frames": int(sum(c["frames"] for c in per_cam)),
        "audio_vs_span": round(sum(c["audio_s"] for c in per_cam)
                               / max(sum(c["span_s"] for c in per_cam), 1e-9), 3),
        "load1": os.getloadavg()[0],
    }


def capacity(counts: list[int], seconds: float) -> list[dict[str, float]]:
    clip = make_clip()
    rows = []
    for count in counts:
        row = capacity_step(clip, count, seconds)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if row["frames_lost"] or row["holes"]:
            break  # the largest N without loss is the row before
    return rows


def kind_clip(kind: str) -> tuple[Path, str]:
    """The clip of a kind of source and the server pipeline that plays it (cached)."""
    if kind == "h264":
        return make_clip(), "h264-pcmu"
    WORK.mkdir(parents=True, exist_ok=True)
    lavfi = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-maxrate", "4M",
            "-bufsize", "2M", "-g", "50", "-bf", "0"]
    if kind == "reconnect":
        clip = WORK / "cam-720p-4M-pcmu-6s.mkv"
        if not clip.exists():
            _run(["ffmpeg", "-v", "error", "-y", "-i", str(make_clip()), "-t", "6", "-c", "copy",
                  str(clip)])
        return clip, "h264-pcmu"
    if kind == "resize":
        clip = WORK / "cam-resize-3s.ts"
        if not clip.exists():
            parts = []
            for size in ("1280x720", "640x360"):
                part = WORK / f"resize-{size}.ts"
                _run([*lavfi, f"testsrc2=size={size}:rate={FPS}", "-t", "3", *x264, str(part)])
                parts.append(part)
            listing = WORK / "resize.txt"
            listing.write_text("".join(f"file '{p}'\n" for p in parts * 10))
            _run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                  str(listing), "-c", "copy", str(clip)])
        return clip, "h264-ts"
    clip = WORK / "cam-720p-10fps.mjpeg"
    if not clip.exists():
        _run([*lavfi, f"testsrc2=size=1280x720:rate={MJPEG_FPS}", "-t", "10", "-c:v", "mjpeg",
              "-q:v", "5", "-f", "mjpeg", str(clip)])
    return clip, "mjpeg"


def kind_step(kind: str, count: int, seconds: float) -> dict[str, object]:
    """``count`` cameras of one kind: recorder and server CPU, frames and segments."""
    clip, pipeline = kind_clip(kind)
    root = WORK / f"kind-{kind}"
    shutil.rmtree(root, ignore_errors=True)
    server = RtspServer(clip, count, pipeline)
    try:
        recorders = Recorders(server.urls, root, segment_s=5.0)
        try:
            recorders.wait_recording()
            cpu0, srv0, wall0 = time.process_time(), server.cpu_s(), time.monotonic()
            time.sleep(seconds)
            cpu1, srv1, wall1 = time.process_time(), server.cpu_s(), time.monotonic()
        finally:
            recorders.stop()
    finally:
        server.close()
    wall = wall1 - wall0
    frames = segments = 0
    for paths in recorders.segments:
        segments += len(paths)
        for path in paths:
            with av.open(str(path)) as container:
                frames += sum(1 for p in container.demux(video=0) if p.size)
    return {"kind": kind, "cameras": count, "seconds": round(wall, 1),
            "recorder_cpu_pct_per_camera": round(100 * (cpu1 - cpu0) / wall / count, 2),
            "server_cpu_pct": round(100 * (srv1 - srv0) / wall, 1),
            "frames_per_camera": round(frames / count, 1),
            "segments_per_camera": round(segments / count, 1),
            "load1": os.getloadavg()[0]}


def kinds(count: int, seconds: float) -> list[dict[str, object]]:
    rows = []
    for kind in ("h264", "reconnect", "resize", "mjpeg"):
        rows.append(kind_step(kind, count, seconds))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def transcode(minutes: int = 10) -> dict[str, float]:
    """G.711 µ-law → AAC for ``minutes`` of audio, as an export does it."""
    source = WORK / f"pcmu-{minutes}min.mkv"
    if not source.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
              "sine=frequency=440:sample_rate=8000", "-t", str(minutes * 60),
              "-c:a", "pcm_mulaw", "-ar", "8000", "-ac", "1", str(source)])
    with av.open(str(source)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.size]
        transcoder = AacTranscoder.for_stream(stream)
        began = time.perf_counter()
        out = 0
        for packet in packets:
            assert packet.pts is not None and packet.time_base is not None
            at_us = int(packet.pts * packet.time_base * 1_000_000)
            out += len(transcoder.feed(packet, stream.codec_context, at_us))
        out += len(transcoder.flush())
        took = time.perf_counter() - began
    return {"audio_minutes": minutes, "seconds": round(took, 3),
            "seconds_per_hour_of_audio": round(took * 60 / minutes, 2),
            "aac_packets": out}


def soak(seconds: float, cameras: int = 16) -> dict[str, object]:
    clip = make_clip()
    root = WORK / "soak"
    shutil.rmtree(root, ignore_errors=True)
    server = RtspServer(clip, cameras)
    exports = failures = 0
    try:
        recorders = Recorders(server.urls, root, segment_s=5.0)
        try:
            recorders.wait_recording()
            start = {"recorder": _rss_fds(os.getpid()), "rtsp_server": server.rss_fds()}
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(10)
                ok = _export_newest(recorders, root, exports)
                exports += 1
                failures += not ok
                _sweep(recorders, max_age_s=60)
            end = {"recorder": _rss_fds(os.getpid()), "rtsp_server": server.rss_fds()}
        finally:
            recorders.stop()
    finally:
        server.close()
    kept = [count_frames([p for p in paths if p.exists()]) for paths in recorders.segments]
    return {"seconds": seconds, "cameras": cameras, "exports": exports,
            "export_failures": failures, "rss_mb_fds_start": start, "rss_mb_fds_end": end,
            "frames_lost_in_kept_segments": int(sum(k["lost"] for k in kept)),
            "holes_in_kept_segments": int(sum(k["holes"] for k in kept)),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def _export_newest(recorders: Recorders, root: Path, number: int) -> bool:
    camera = number % len(recorders.segments)
    paths = [p for p in recorders.segments[camera] if p.exists()][-3:]
    if not paths:
        return False
    sources = []
    for path in paths:
        start = parse_segment_filename(path.name) or 0
        sources.append(SourceSegment(str(path), start, start + 5_200_000))
    end = sources[-1].end_us - 200_000
    out = root / f"export-{number}.mp4"
    try:
        cut(CutRequest(SourceRange(tuple(sources), end - 10_000_000, end), str(out), "mp4"),
            fsync=False)
    except Exception as exc:  # a soak counts failures instead of stopping
        print("export failed:", exc)
        return False
    out.unlink()
    return True


def _sweep(recorders: Recorders, max_age_s: float) -> None:
    cutoff = time.time() - max_age_s
    for paths in recorders.segments:
        for path in list(paths):
            if path.exists() and path.stat().st_mtime < cutoff:
                path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.recorder")
    parser.add_argument("what", nargs="?", default="all",
                        choices=["capacity", "kinds", "transcode", "soak", "all"])
    parser.add_argument("--counts", default="1,4,16,32,64")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--soak-s", type=float, default=60)
    parser.add_argument("--kind-cameras", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, object] = {"machine": machine()}
    if args.what in ("transcode", "all"):
        results["transcode"] = transcode()
        print(json.dumps(results["transcode"]), flush=True)
    if args.what in ("capacity", "all"):
        results["capacity"] = capacity([int(n) for n in args.counts.split(",")], args.seconds)
    if args.what in ("kinds", "all"):
        results["kinds"] = kinds(args.kind_cameras, args.seconds)
    if args.what in ("soak", "all"):
        results["soak"] = soak(args.soak_s)
        print(json.dumps(results["soak"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"recorder-{args.what}-latest.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print("saved", target.relative_to(ROOT))


if __name__ == "__main__":
    main()
