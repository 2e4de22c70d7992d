"""Run the real ``sense-plugin serve`` as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from lxml import etree


def free_port() -> int:
    """A loopback TCP port free right now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``sense-plugin serve --config CONFIG --port PORT`` with helpers to talk to it."""

    #: Every server object alive: a test run's process guard (tests/conftest.py) leaves alone
    #: the servers of fixtures wider than a test, also when a test restarts one.
    instances: ClassVar[weakref.WeakSet[ServerProcess]] = weakref.WeakSet()

    def __init__(self, config: Path, log: Path, tree: Path | None = None) -> None:
        """``tree``: run the package of that checkout (its directory as the working directory
        and on ``PYTHONPATH``), so one script measures the code before a change and after."""
        ServerProcess.instances.add(self)
        self.config, self.log_path, self.tree = config, log, tree
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0,
              preexec_fn: Callable[[], None] | None = None) -> None:
        """Start and wait until ``/info`` answers; ``preexec_fn`` runs in the child first."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sense_plugin", "serve", "--config", str(self.config),
                 "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.tree, preexec_fn=preexec_fn)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                self.get("/info")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log_path.read_text()}")

    def get(self, path: str, data: bytes | None = None) -> etree._Element:
        """GET ``path`` (POST with ``data``); the parsed XML answer."""
        request = urllib.request.Request(self.url + path, data=data)
        with urllib.request.urlopen(request, timeout=10) as response:
            return etree.fromstring(response.read())

    def command(self, query: str, data: bytes | None = None) -> etree._Element:
        """``/command?command=QUERY``; the parsed XML answer."""
        return self.get(f"/command?command={query}", data)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)
