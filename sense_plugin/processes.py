"""The processes the server starts through ``multiprocessing``'s forkserver, and their end.

Two facts of the forkserver start method shape this module:

* The forkserver lives until the process that started it exits, and every process it forks
  holds the pipe it watches, so it also lives as long as any of them. A process that closes
  its engine and goes on (the test suite, an application embedding the server) keeps it.
* A ``ProcessPoolExecutor`` worker waits on a queue whose write end it holds itself: when its
  parent is killed (SIGKILL) it never sees an end of file and waits forever, adopted by init,
  and keeps the forkserver alive with it. An export worker has a pipe of its own and exits.

So users of the forkserver register (:func:`forkserver_in_use`), the last one out stops it,
and pool workers are started with :func:`exit_with_parent` as their initializer.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Iterator
from multiprocessing import forkserver

_lock = threading.Lock()
_users = 0
#: How often a pool worker without ``pidfd_open`` looks whether its parent still lives.
PARENT_POLL_S = 1.0


@contextlib.contextmanager
def forkserver_in_use() -> Iterator[None]:
    """Mark the forkserver as used while the block runs; the last user stops it."""
    acquire_forkserver()
    try:
        yield
    finally:
        release_forkserver()


def acquire_forkserver() -> None:
    """Count one more user of this process's forkserver (before it is started)."""
    global _users
    with _lock:
        _users += 1


def release_forkserver() -> None:
    """Count one user less; with none left, stop the forkserver (a later user restarts it)."""
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            stop_forkserver()


def stop_forkserver() -> None:
    """Stop this process's forkserver once nothing it forked runs any more.

    ``multiprocessing`` has no public way: ``_stop`` (which its own tests use) closes the
    pipe the forkserver watches and waits for it to exit, which it does only when no process
    it forked holds that pipe. So a forkserver with a live child (or where /proc cannot tell)
    is left to end with this process rather than waited for.
    """
    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    stop = getattr(server, "_stop", None)
    if pid is not None and stop is not None and _childless(pid):
        stop()


def _childless(pid: int) -> bool:
    """True when /proc shows that ``pid`` has no live child."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        children: list[str] = []
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listing:
                children += listing.read().split()
    except OSError:
        return False
    return not any(_running(int(child)) for child in children)


def _running(pid: int) -> bool:
    """Not exited (an exited child not yet reaped holds nothing open)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def exit_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: end this process as soon as ``parent_pid`` is gone.

    A daemon thread waits on a pidfd of the parent (readable once it has exited); where
    pidfds are missing it polls the pid.
    """
    threading.Thread(target=_watch, args=(parent_pid,), daemon=True,
                     name="exit-with-parent").start()


def _watch(parent_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfds (old kernel, seccomp): poll
        while _alive(parent_pid):
            select.select([], [], [], PARENT_POLL_S)
        os._exit(1)
    select.select([pidfd], [], [])
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
