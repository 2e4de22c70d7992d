"""The archive's running recorders: one thread each, every closed segment indexed at once."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.recorder import Recorder
from sense_plugin.config import DeviceConfig
from sense_plugin.errors import MediaError

log = logging.getLogger(__name__)


class Recorders:
    """The recorders of the configured (or live demo) devices, by device id."""

    def __init__(self, index_of: Callable[[], ArchiveIndex | None]) -> None:
        #: The open index, or None once it is closed (segments are then not indexed).
        self._index_of = index_of
        self._recorders: dict[int, Recorder] = {}
        self._threads: list[threading.Thread] = []
        self._recorded_bytes: dict[int, int] = {}

    def start(self, device: DeviceConfig, source: str, segment_s: float) -> None:
        """Record ``source`` into the device's archive in a thread of its own."""
        recorder = Recorder(source, device.archive_dir, segment_s=segment_s,
                            on_segment=functools.partial(self._on_segment, device),
                            name=device.name, rtsp_transport=device.rtsp_transport,
                            stall_s=device.video_stall_s)
        thread = threading.Thread(target=recorder.run, daemon=True,
                                  name=f"recorder-{device.device_id}")
        self._recorders[device.device_id] = recorder
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Ask every recorder to stop (they finish their segment; see :meth:`wait_stopped`)."""
        for recorder in self._recorders.values():
            recorder.stop()

    async def wait_stopped(self) -> None:
        """Until every recorder thread has ended."""
        while any(thread.is_alive() for thread in self._threads):
            await asyncio.sleep(0.02)
        self._threads.clear()

    def get(self, device_id: int) -> Recorder | None:
        """The device's recorder, or None when it has none."""
        return self._recorders.get(device_id)

    def by_device(self) -> dict[int, Recorder]:
        """The running recorders by device id (for metrics)."""
        return dict(self._recorders)

    def recorded_bytes(self) -> dict[int, int]:
        """Bytes of the segments each recorder has closed since the start (for metrics)."""
        return dict(self._recorded_bytes)

    def _on_segment(self, device: DeviceConfig, path: Path) -> None:
        """Recorder thread: index a segment it has just closed."""
        index = self._index_of()
        if index is None:
            return
        try:
            info = probe_segment(path)
            mtime_ns = path.stat().st_mtime_ns
            index.add(Segment(device.device_id, info.start_us, info.end_us, path,
                              info.size_bytes), mtime_ns=mtime_ns)
            recorded = self._recorded_bytes.get(device.device_id, 0) + info.size_bytes
            self._recorded_bytes[device.device_id] = recorded
        except (MediaError, OSError, sqlite3.Error) as exc:
            log.error("new segment %s of %s not indexed: %s", path.name, device.name, exc)
