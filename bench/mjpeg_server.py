"""An MJPEG-over-HTTP camera for benchmarks (standard library only), in a process of its own.

``python3 bench/mjpeg_server.py PORT FILE.mjpeg FPS``: every GET gets the JPEG pictures of
FILE (concatenated JPEGs, as ``ffmpeg -f mjpeg`` writes them) as multipart/x-mixed-replace
parts at FPS, looping, until the client leaves. Prints ``ready PORT`` once listening.
"""

from __future__ import annotations

import http.server
import sys
import time
from typing import Any


def pictures(data: bytes) -> list[bytes]:
    """Split concatenated JPEGs at their start-of-image markers."""
    starts = []
    at = data.find(b"\xff\xd8\xff")
    while at >= 0:
        starts.append(at)
        at = data.find(b"\xff\xd8\xff", at + 3)
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


class Handler(http.server.BaseHTTPRequestHandler):
    frames: list[bytes] = []
    fps = 10.0

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        began, number = time.monotonic(), 0
        try:
            while True:
                time.sleep(max(0.0, began + number / self.fps - time.monotonic()))
                jpeg = self.frames[number % len(self.frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                number += 1
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def main(argv: list[str]) -> int:
    with open(argv[2], "rb") as source:
        Handler.frames = pictures(source.read())
    Handler.fps = float(argv[3])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
    server.daemon_threads = True
    print("ready", server.server_address[1], flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
