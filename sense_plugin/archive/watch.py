"""Notice new and changed segment files at once (inotify through ``watchfiles``), in a thread.

The watcher only says *which device folders changed*; the scanner decides what that means
(a segment completed, one still growing, one deleted). It is a shortcut, not the source of
truth: the periodic rescan stays the backstop for file systems without change events
(network shares) and for folders created after the start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)
logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every batch at INFO

#: watchfiles groups the events of this many milliseconds into one batch.
DEBOUNCE_MS = 200


class ArchiveWatcher:
    """Calls ``on_change(paths)`` from its own thread for each batch of changed files."""

    def __init__(self, roots: Iterable[Path], on_change: Callable[[set[Path]], None]) -> None:
        self.roots = sorted({root for root in roots})
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watching: list[Path] = []

    def start(self) -> bool:
        """Start watching the roots that exist; False when nothing can be watched."""
        try:
            import watchfiles  # noqa: F401  (an optional speed-up: the rescan works without)
        except ImportError:
            log.warning("watchfiles is not installed; new segments are found by the periodic "
                        "rescan only")
            return False
        self.watching = [root for root in self.roots if root.is_dir()]
        if not self.watching:
            return False
        self._thread = threading.Thread(target=self._run, name="archive-watch", daemon=True)
        self._thread.start()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Ask the thread to stop (it notices within ``DEBOUNCE_MS``-ish); idempotent."""
        self._stop.set()

    def join(self, timeout_s: float = 2.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(
                    *self.watching, stop_event=self._stop, debounce=DEBOUNCE_MS, step=50,
                    rust_timeout=500, yield_on_timeout=False, recursive=True,
                    ignore_permission_denied=True, raise_interrupt=False, watch_filter=None):
                self._on_change({Path(path) for _change, path in changes})
        except Exception as exc:  # inotify limits, a root removed: the rescan takes over
            log.warning("watching the archive folders stopped (%s); new segments are found "
                        "by the periodic rescan only", exc)
