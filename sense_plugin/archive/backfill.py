"""Back-fill of the live demo: the last ``demo_minutes`` before the first start, resumable.

On the first start of an empty demo archive the plan (the range and the devices) is written to
``<data_dir>/demo-backfill.json`` before any segment, and marked done after the last one. A
start that is interrupted (a port already in use, a stop, a crash) leaves the plan open and the
next start writes only the segments still missing, so a partial demo archive is always
completed. Segment files appear atomically (temporary name, rename), so an existing final name
is a complete segment.

The back-fill of each device ends exactly where its live recording begins: a new plan waits
(at most :data:`JOIN_WAIT_S`) for the device's first recorded segment, whose start is known only
once the recorder's clock has settled, and ends there; those ends are kept in the marker.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sense_plugin.archive.demo_archive import DemoSpec, plan, write_tasks
from sense_plugin.archive.index import ArchiveIndex
from sense_plugin.configmodel import DeviceConfig
from sense_plugin.timestamps import format_timestamp

log = logging.getLogger(__name__)

MARKER_NAME = "demo-backfill.json"
#: How long a new back-fill waits for the live recording's first segment (a live segment is
#: 10 s; the recorder may take a few seconds to connect) before it ends at the plan's end.
JOIN_WAIT_S = 40.0
#: A live recording's first frame may be stamped a little before the plan was made (the
#: recorder's clock takes the earliest arrival); back-fill segments start 10 s or more before.
LIVE_LEAD_US = 5_000_000
_POLL_S = 0.25


@dataclass(frozen=True)
class Backfill:
    """A planned back-fill: ``minutes`` ending at ``end_us`` for these devices."""

    end_us: int
    minutes: float
    device_ids: tuple[int, ...]
    done: bool = False
    #: Per device (in ``device_ids`` order): where its live recording began; () not yet known.
    ends_us: tuple[int, ...] = ()


def marker_path(data_dir: Path) -> Path:
    return data_dir / MARKER_NAME


def load(data_dir: Path) -> Backfill | None:
    """The recorded plan, or None (none yet, or unreadable: then it is treated as done)."""
    path = marker_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Backfill(int(raw["end_us"]), float(raw["minutes"]),
                        tuple(int(d) for d in raw["device_ids"]), bool(raw["done"]),
                        tuple(int(e) for e in raw.get("ends_us", ())))
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
        backfill: Backfill, stop: threading.Event, join_wait_s: float = JOIN_WAIT_S) -> int:
    """Write the plan's missing segments; mark it done unless stopped. Returns segments written.

    ``join_wait_s``: how long a new plan waits for the live recordings (:func:`live_starts`).
    """
    devices = [d for d in targets if d.device_id in backfill.device_ids]
    if not backfill.ends_us:
        ends_us = live_starts(index, backfill, stop, join_wait_s)
        if stop.is_set():
            return 0
        backfill = replace(backfill, ends_us=ends_us)
        save(data_dir, backfill)
    ends = dict(zip(backfill.device_ids, backfill.ends_us, strict=False))
    minutes = replace(spec, minutes=backfill.minutes)
    tasks = sorted((t for d in devices
                    for t in plan([d], minutes, ends.get(d.device_id, backfill.end_us))
                    if not t.path.exists()), key=lambda t: t.start_us)
    if tasks:
        log.info("demo back-fill: writing %d segments (%.1f min before %s) for %d devices",
                 len(tasks), backfill.minutes, format_timestamp(backfill.end_us), len(devices))
    written = write_tasks(index, tasks, spec, stop=stop) if tasks else 0
    if not stop.is_set() and written == len(tasks):
        save(data_dir, replace(backfill, done=True))
    return written



def live_starts(index: ArchiveIndex, backfill: Backfill, stop: threading.Event,
                wait_s: float) -> tuple[int, ...]:
    """Per device of ``backfill``: the start of its first live segment (one starting at most
    :data:`LIVE_LEAD_US` before the plan's end: the back-fill's own end a segment or more
    earlier), waited for up to ``wait_s``; the plan's end for a device without one by then."""
    deadline = time.monotonic() + wait_s
    found: dict[int, int] = {}
    while not stop.is_set():
        for device_id in backfill.device_ids:
            if device_id in found:
                continue
            live = [s.start_us for s in index.segments(device_id, backfill.end_us - LIVE_LEAD_US,
                                                       1 << 62)
                    if s.start_us >= backfill.end_us - LIVE_LEAD_US]
            if live:
                found[device_id] = min(live)
        if len(found) == len(backfill.device_ids) or time.monotonic() >= deadline:
            break
        stop.wait(_POLL_S)
    missing = [str(d) for d in backfill.device_ids if d not in found]
    if missing:
        log.info("demo back-fill: no live recording yet for %s; it ends at %s", ", ".join(missing),
                 format_timestamp(backfill.end_us))
    return tuple(found.get(d, backfill.end_us) for d in backfill.device_ids)
