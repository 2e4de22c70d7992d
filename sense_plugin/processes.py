"""Processes the server starts through ``multiprocessing``'s forkserver end with the server.

Every process the forkserver forks holds the pipe the forkserver watches, so the forkserver
lives as long as the server or any of its children. An export worker reads its jobs from a
pipe whose other end only the server holds and exits when the server is gone. A
``ProcessPoolExecutor`` worker (the demo archive's writers) waits on a queue whose write end
it holds itself: when the server is killed (SIGKILL) it never sees an end of file, waits
forever, adopted by init, and keeps the forkserver alive with it. Such workers are started
with :func:`exit_with_parent` as their initializer.
"""

from __future__ import annotations

import os
import select
import threading

#: How often a pool worker without ``pidfd_open`` looks whether its parent still lives.
PARENT_POLL_S = 1.0


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
