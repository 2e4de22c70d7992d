"""The live demo's parts (docs/archive.rst): the synthetic source of the demo devices and their
resumable back-fill; the archive service starts the recorders on the URLs given here."""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading

from sense_plugin.archive import backfill
from sense_plugin.archive.demo_archive import DemoSpec, demo_devices
from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.archive.synthetic import LiveSpec, SyntheticSource
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.errors import MediaError
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)


class LiveDemo:
    """Blocking methods: the archive service runs them in its executor."""

    def __init__(self, config: Config, spec: DemoSpec, live: LiveSpec) -> None:
        self.config = config
        self.spec = spec
        self.live = live
        self.targets = [d for d in demo_devices(config) if d.enabled]
        self.device_ids = frozenset(d.device_id for d in self.targets)
        self._source: SyntheticSource | None = None

    def start(self, index: ArchiveIndex) -> tuple[list[tuple[DeviceConfig, str]],
                                                  backfill.Backfill | None]:
        """Start the source; returns (device, URL) to record and the back-fill to run."""
        if not self.targets:
            return [], None
        source = SyntheticSource([d.name for d in self.targets], self.live)
        try:
            urls = source.start()
        except (MediaError, OSError) as exc:
            log.error("live demo unavailable: %s", exc)
            return [], None
        self._source = source
        plan = backfill.decide(self.config.server.data_dir, index, self.targets,
                               self.spec.minutes, now_us())
        live = self.live
        log.info("live demo: %s recorded from a synthetic source (pid %s, %dx%d at %d fps)",
                 ", ".join(d.name for d in self.targets), source.pid, live.width, live.height,
                 live.fps)
        return list(zip(self.targets, urls, strict=True)), plan

    def backfill(self, index: ArchiveIndex, plan: backfill.Backfill,
                 stop: threading.Event) -> None:
        """Write what the plan still misses; failures are logged (the next start resumes)."""
        try:
            backfill.run(self.config.server.data_dir, index, self.targets, self.spec, plan,
                         stop)
        except (OSError, sqlite3.Error, MediaError, ValueError) as exc:
            log.error("demo back-fill failed (resumed at the next start): %s", exc)
        except concurrent.futures.process.BrokenProcessPool as exc:
            log.error("demo back-fill failed: a worker died (%s)", exc)

    def stop(self) -> None:
        """Stop the source (after the recorders)."""
        source, self._source = self._source, None
        if source is not None:
            source.stop()
