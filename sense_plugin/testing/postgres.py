"""A throwaway PostgreSQL server: ``initdb`` + ``pg_ctl`` in a temporary directory.

Tests and benchmarks often run as root and PostgreSQL refuses to, so the server then runs as
the unprivileged ``postgres`` user of Debian's package (or ``nobody``). It listens on a free
loopback port; ``stop``/``start``/``kill`` let a test restart it mid-export. ``running_pg()``
gives one for a block. Without PostgreSQL's programs ``PgServer`` raises
``unittest.SkipTest`` with a one-line hint: pytest reports a skip, a benchmark stops with the
hint.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sense_plugin.testing.serverprocess import free_port

HINT = "needs PostgreSQL (Debian: apt-get install postgresql; .ci/run installs it)"


def find_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl`` on PATH or in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None  # already unprivileged
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class PgServer:
    """One PostgreSQL cluster with a ``sense`` database and a ``sense`` superuser."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.sockets = root / "sockets"
        self.port = free_port()
        self.user = _run_as()
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise unittest.SkipTest(HINT)

    @property
    def url(self) -> str:
        """The ``sense`` database's URL (TCP, password)."""
        return self.database_url("sense")

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server (TCP, password)."""
        return f"postgresql://sense:sense@127.0.0.1:{self.port}/{name}"

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        def demote() -> None:
            if self.user is not None:
                os.setgid(self.user.pw_gid)
                os.setuid(self.user.pw_uid)

        return subprocess.run(list(args), capture_output=True, text=True, check=check,
                              preexec_fn=demote, cwd=self.root, timeout=60)

    def create(self) -> None:
        """``initdb`` as the server's user, start it, and create the ``sense`` database."""
        self.sockets.mkdir(parents=True, exist_ok=True)
        password = self.root / "pw"
        password.write_text("sense\n")
        if self.user is not None:
            for path in (self.root, self.sockets, password):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        assert self.initdb is not None
        self._cmd(self.initdb, "-D", str(self.data), "-U", "sense", "--pwfile", str(password),
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                  "--no-sync")
        self.start()
        self.create_database("sense")

    def create_database(self, name: str) -> str:
        """A new, empty database ``name`` on the running server; its URL."""
        psql = find_bin("psql")
        assert psql is not None, HINT
        self._cmd(psql, "-h", str(self.sockets), "-p", str(self.port), "-U", "sense",
                  "-d", "postgres", "-c", f"CREATE DATABASE {name}")
        return self.database_url(name)

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        assert self.pg_ctl is not None
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._cmd(self.pg_ctl, "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` (``fast``, ``smart`` or ``immediate``)."""
        assert self.pg_ctl is not None
        self._cmd(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash, not a shutdown); ``start`` recovers."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


@contextmanager
def running_pg() -> Iterator[PgServer]:
    """A new PostgreSQL server, running until the block ends; then stopped and deleted.

    Its directory is outside pytest's (which is private to root), so the server's user can
    reach it.
    """
    root = Path(tempfile.mkdtemp(prefix="sense-pg-"))
    try:
        server = PgServer(root)
        try:
            server.create()
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
