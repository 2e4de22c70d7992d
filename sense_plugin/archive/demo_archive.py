"""Build a synthetic demo archive for configured devices, on all cores, and index it.

One process-pool task per segment (``forkserver`` workers: never a plain fork of a threaded
server) so the work spreads over the cores and a stop request waits for one segment at most.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from sense_plugin import demo_defaults as defaults
from sense_plugin.archive.demo import write_segment
from sense_plugin.archive.index import ArchiveIndex, Segment, index_path
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.synthetic import LiveSpec
from sense_plugin.config import Config, DeviceConfig
from sense_plugin.naming import parse_segment_filename, segment_filename
from sense_plugin.processes import exit_with_parent
from sense_plugin.timestamps import US_PER_S, now_us

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoSpec:
    """What to generate for each device (defaults: ``demo-archive``'s)."""

    minutes: float = defaults.MINUTES
    width: int = defaults.WIDTH
    height: int = defaults.HEIGHT
    fps: int = defaults.FPS
    bitrate_bps: int = defaults.ARCHIVE_BITRATE_BPS
    segment_s: float = defaults.ARCHIVE_SEGMENT_S
    gop_s: float = defaults.GOP_S
    fmt: str = "mp4"
    #: Record the devices from a synthetic live source after the back-fill (docs/archive.rst);
    #: None: a static archive generated once.
    live: LiveSpec | None = None


def live_demo_spec(minutes: float) -> DemoSpec:
    """The live demo's: back-filled like the live source encodes, recorded in short segments."""
    live = LiveSpec()
    return DemoSpec(minutes=minutes, width=live.width, height=live.height, fps=live.fps,
                    bitrate_bps=live.bitrate_bps, segment_s=defaults.LIVE_SEGMENT_S,
                    gop_s=live.gop_s, live=live)


@dataclass(frozen=True)
class _Task:
    device_id: int
    label: str
    path: Path
    start_us: int
    frames: int


def demo_devices(config: Config, devices: int | None = None) -> list[DeviceConfig]:
    """The devices a demo archive is made for: those without a live source (the first K),
    never an imported archive (read-only to us)."""
    targets = [d for d in config.devices if d.source is None and not d.archive_foreign]
    if devices is not None:
        if devices > len(targets):
            raise ValueError(f"{devices} demo devices requested but the configuration has "
                             f"only {len(targets)} devices without a source")
        targets = targets[:devices]
    return targets


def wants_demo(index: ArchiveIndex, config: Config) -> bool:
    """A static demo archive is generated when ``[archive] demo`` is on, some device can
    have one and no device has any segment yet."""
    if not config.archive.demo or not demo_devices(config):
        return False
    return all(index.count(d.device_id) == 0 for d in config.devices)


def build_demo_archive(config: Config, *, devices: int | None = None, minutes: float,
                       width: int, height: int, fps: int, bitrate_bps: int, segment_s: float,
                       gop_s: float, end_us: int | None = None) -> None:
    """Generate ``minutes`` of synthetic video ending at ``end_us`` (default now) per device.

    The devices' existing segments are replaced (a demo archive is disposable; half-replaced
    ranges would leave holes or overlaps). Synchronous;
    raises ValueError for impossible parameters, OSError/sqlite3.Error on storage failures.
    """
    spec = DemoSpec(minutes=minutes, width=width, height=height, fps=fps,
                    bitrate_bps=bitrate_bps, segment_s=segment_s, gop_s=gop_s)
    index = ArchiveIndex(index_path(config))
    try:
        generate_into(index, demo_devices(config, devices), spec, end_us=end_us)
    finally:
        index.close()


def plan(targets: list[DeviceConfig], spec: DemoSpec, end_us: int) -> list[_Task]:
    """Segments to write, interleaved across devices in time order."""
    if spec.fps <= 0 or spec.minutes <= 0 or spec.segment_s <= 0:
        raise ValueError("fps, minutes and segment length must be positive")
    total_frames = int(spec.minutes * 60 * spec.fps)
    per_segment = max(1, round(spec.segment_s * spec.fps))
    start_us = end_us - total_frames * US_PER_S // spec.fps
    tasks = []
    for first in range(0, total_frames, per_segment):
        seg_start_us = start_us + first * US_PER_S // spec.fps
        for device in targets:
            path = device.archive_dir / segment_filename(seg_start_us, spec.fmt)
            tasks.append(_Task(device.device_id, device.name, path, seg_start_us,
                               min(per_segment, total_frames - first)))
    return tasks


def generate_into(index: ArchiveIndex, targets: list[DeviceConfig], spec: DemoSpec, *,
                  end_us: int | None = None, stop: threading.Event | None = None) -> int:
    """Replace the devices' segments with a demo archive; returns how many were indexed."""
    end_us = now_us() if end_us is None else end_us
    tasks = plan(targets, spec, end_us)
    if not tasks:
        return 0
    _clear(index, targets)
    return write_tasks(index, tasks, spec, stop=stop)


def write_tasks(index: ArchiveIndex, tasks: list[_Task], spec: DemoSpec, *,
                stop: threading.Event | None = None) -> int:
    """Write and index these segments on all cores; returns how many (fewer if stopped)."""
    for directory in {task.path.parent for task in tasks}:
        directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    context = multiprocessing.get_context("forkserver")
    workers = max(1, min(os.cpu_count() or 1, len(tasks)))
    done = 0
    # workers that end with this process, even when it is killed (sense_plugin.processes)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        pending: set[Future[tuple[Segment, int]]] = set()
        queue = list(reversed(tasks))
        while queue or pending:
            while queue and len(pending) < 2 * workers and not (stop and stop.is_set()):
                pending.add(pool.submit(_write_task, queue.pop(), spec))
            if stop and stop.is_set():
                queue.clear()
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                segment, mtime_ns = future.result()
                index.add(segment, mtime_ns=mtime_ns)
                done += 1
    devices = len({task.device_id for task in tasks})
    log.info("demo archive: %d segments for %d devices in %.1f s", done, devices,
             time.monotonic() - started)
    return done


def _clear(index: ArchiveIndex, targets: list[DeviceConfig]) -> None:
    """Delete the devices' segment files, indexed or not, and their index rows."""
    for device in targets:
        for path in index.files(device.device_id):
            path.unlink(missing_ok=True)
            index.remove(path)
        if device.archive_dir.is_dir():
            for path in device.archive_dir.iterdir():
                if path.is_file() and parse_segment_filename(path.name) is not None:
                    path.unlink()


def _write_task(task: _Task, spec: DemoSpec) -> tuple[Segment, int]:
    """Worker process: encode one segment, then measure it as the index will see it."""
    gop_frames = max(1, round(spec.gop_s * spec.fps))
    write_segment(task.path, start_us=task.start_us, duration_s=task.frames / spec.fps,
                  fmt=spec.fmt, width=spec.width, height=spec.height, fps=spec.fps,
                  gop_frames=gop_frames, bitrate_bps=spec.bitrate_bps, label=task.label)
    info = probe_segment(task.path)
    mtime_ns = task.path.stat().st_mtime_ns
    return Segment(task.device_id, info.start_us, info.end_us, task.path,
                   info.size_bytes), mtime_ns
