"""Back-fill of the live demo: the last ``demo_minutes`` before the first start, resumable.

On the first start of an empty demo archive the plan (the range and the devices) is written to
``<data_dir>/demo-backfill.json`` before any segment, and marked done after the last one. A
start that is interrupted (a port already in use, a stop, a crash) leaves the plan open and the
next start writes only the segments still missing, so a partial demo archive is always
completed. Segment files appear atomically (temporary name, rename), so an existing final name
is a complete segment.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sense_plugin.archive.demo_archive import DemoSpec, plan, write_tasks
from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.configmodel import DeviceConfig
from sense_plugin.timestamps import format_timestamp

log = logging.getLogger(__name__)

MARKER_NAME = "demo-backfill.json"


@dataclass(frozen=True)
class Backfill:
    """A planned back-fill: ``minutes`` ending at ``end_us`` for these devices."""

    end_us: int
    minutes: float
    device_ids: tuple[int, ...]
    done: bool = False


def marker_path(data_dir: Path) -> Path:
    return data_dir / MARKER_NAME


def load(data_dir: Path) -> Backfill | None:
    """The recorded plan, or None (none yet, or unreadable: then it is treated as done)."""
    path = marker_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Backfill(int(raw["end_us"]), float(raw["minutes"]),
                        tuple(int(d) for d in raw["device_ids"]), bool(raw["done"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("demo back-fill marker %s unreadable (%s); not resuming it", path, exc)
        return Backfill(0, 0.0, (), done=True)


def save(data_dir: Path, backfill: Backfill) -> None:
    """Write the marker atomically (and durably: it decides what the next start does)."""
    path = marker_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = asdict(backfill)
    data["device_ids"] = [str(d) for d in backfill.device_ids]
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def decide(data_dir: Path, index: ArchiveIndex, targets: list[DeviceConfig],
           minutes: float, end_us: int) -> Backfill | None:
    """What this start must back-fill: an open plan, a new one for an empty archive, or None.

    A new plan is made only when no target device has any segment (the first start); an
    archive from before this marker existed is left as it is.
    """
    current = load(data_dir)
    if current is not None:
        return None if current.done else current
    if not targets or any(index.count(d.device_id) for d in targets):
        return None
    backfill = Backfill(end_us, minutes, tuple(d.device_id for d in targets))
    save(data_dir, backfill)
    return backfill


def run(data_dir: Path, index: ArchiveIndex, targets: list[DeviceConfig], spec: DemoSpec,
        backfill: Backfill, stop: threading.Event) -> int:
    """Write the plan's missing segments; mark it done unless stopped. Returns segments written."""
    devices = [d for d in targets if d.device_id in backfill.device_ids]
    tasks = [t for t in plan(devices, replace(spec, minutes=backfill.minutes), backfill.end_us)
             if not t.path.exists()]
    if tasks:
        log.info("demo back-fill: writing %d segments (%.1f min before %s) for %d devices",
                 len(tasks), backfill.minutes, format_timestamp(backfill.end_us), len(devices))
    written = write_tasks(index, tasks, spec, stop=stop) if tasks else 0
    if not stop.is_set() and written == len(tasks):
        save(data_dir, replace(backfill, done=True))
    return written

