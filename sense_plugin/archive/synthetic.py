"""A synthetic live camera: the demo picture encoded in real time and served as MPEG-TS on TCP.

The live demo (docs/archive.rst) records demo devices with the real recorder from a real network
source. :class:`SyntheticSource` starts ``python -m sense_plugin.archive.synthetic`` — its own
process, so painting and encoding never compete with the server's event loop or its threads
for the GIL — which listens on one loopback port per camera and prints them. Each connection
gets a fresh stream (starting with a keyframe) of frames painted at the wall-clock instant they
show, so the burned-in clock of the recording is the archive time. The child exits when its
standard input closes, so it never outlives the server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from sense_plugin import demo_defaults as defaults
from sense_plugin.archive.demo import Painter
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LiveSpec:
    """The live picture: small and slow, so three cameras cost a few percent of one core."""

    width: int = defaults.WIDTH
    height: int = defaults.HEIGHT
    fps: int = defaults.FPS
    bitrate_bps: int = defaults.LIVE_BITRATE_BPS
    gop_s: float = defaults.GOP_S


class SyntheticSource:
    """Parent side: start the child, learn its URLs, stop it."""

    def __init__(self, labels: Sequence[str], spec: LiveSpec = LiveSpec()) -> None:
        self.labels = list(labels)
        self.spec = spec
        self.urls: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> list[str]:
        """Blocking (run it off the event loop): spawn the child and wait for its ports."""
        spec = self.spec
        argv = [sys.executable, "-m", "sense_plugin.archive.synthetic",
                "--size", f"{spec.width}x{spec.height}", "--fps", str(spec.fps),
                "--bitrate", str(spec.bitrate_bps), "--gop-seconds", str(spec.gop_s),
                *self.labels]
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], READY_TIMEOUT_S)
        line = self._proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORTS "):
            self.stop()
            raise MediaError("the synthetic demo source did not start")
        self.urls = [f"tcp://127.0.0.1:{port}" for port in line.split()[1:]]
        return self.urls

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        """Blocking: close the child's stdin (it exits), kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- child side ------------------------------------------------------------------------------

def serve_camera(server: socket.socket, label: str, spec: LiveSpec) -> None:
    """Accept one viewer at a time and stream to it until it goes away."""
    painter = Painter(spec.width, spec.height, label)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Until the viewer leaves; then wait for the next one.
            with contextlib.suppress(OSError, av.FFmpegError, ValueError):
                stream_to(conn.makefile("wb", buffering=0), painter, spec)


def stream_to(sink: object, painter: Painter, spec: LiveSpec) -> None:
    """Paint, encode and send frames at real time until writing fails."""
    gop = max(1, round(spec.gop_s * spec.fps))
    with av.open(sink, "w", format="mpegts", options={"flush_packets": "1"}) as container:
        stream = container.add_stream("libx264", rate=spec.fps, options={
            "preset": "ultrafast", "tune": "zerolatency", "threads": "1",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"})
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.bit_rate = spec.bitrate_bps
        stream.codec_context.time_base = Fraction(1, spec.fps)
        start_us = now_us()
        index = 0
        while True:
            instant_us = start_us + index * US_PER_S // spec.fps
            delay_s = (instant_us - now_us()) / US_PER_S
            if delay_s > 0:
                time.sleep(delay_s)
            frame = painter.frame(index, instant_us)
            frame.pts, frame.time_base = index, Fraction(1, spec.fps)
            container.mux(stream.encode(frame))
            index += 1


def _watch_stdin() -> None:
    """Exit as soon as the parent closes our stdin (or dies)."""
    while os.read(sys.stdin.fileno(), 1024):
        pass
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Listen on one loopback port per label, print ``PORTS p1 p2 ...``, serve until stdin
    closes."""
    parser = argparse.ArgumentParser(prog="python -m sense_plugin.archive.synthetic")
    parser.add_argument("labels", nargs="+")
    default = LiveSpec()
    parser.add_argument("--size", default=f"{default.width}x{default.height}")
    parser.add_argument("--fps", type=int, default=default.fps)
    parser.add_argument("--bitrate", type=int, default=default.bitrate_bps)
    parser.add_argument("--gop-seconds", type=float, default=default.gop_s)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    spec = LiveSpec(width, height, args.fps, args.bitrate, args.gop_seconds)
    servers = []
    for label in args.labels:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)
        threading.Thread(target=serve_camera, args=(server, label, spec), daemon=True,
                         name=f"camera-{label}").start()
    print("PORTS " + " ".join(str(s.getsockname()[1]) for s in servers), flush=True)
    _watch_stdin()
    return 0


if __name__ == "__main__":
    sys.exit(main())
