"""Admission checks of a new export that need the engine's state (SPEC §6, SECURITY.rst).

Pure functions over the request and the exports in memory: output names unique within the
export, the queue limits (global and per user), and no export directory inside another one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from sense_plugin.config import Config
from sense_plugin.errors import OutOfRangeError, PathNotAllowedError, QueueFullError
from sense_plugin.export.model import ExportRequest
from sense_plugin.export.paths import output_name
from sense_plugin.timestamps import format_timestamp


def check_unique_names(request: ExportRequest, config: Config) -> None:
    """-22 when two devices of the request would write the same file (same device and start)."""
    seen: dict[str, int] = {}
    for number, device in enumerate(request.devices, start=1):
        configured = config.device(device.device_id)
        name = output_name(configured.name if configured else str(device.device_id),
                           device.device_id, device.start_us, request.fmt)
        if name in seen:
            raise OutOfRangeError(
                f"device {device.device_id} appears twice (#{seen[name]} and #{number}) with "
                f"starttime {format_timestamp(device.start_us)}; both would write '{name}'. "
                "Give each its own start time or merge the ranges")
        seen[name] = number


def check_queue(pending_owners: Iterable[str], owner: str, new_jobs: int,
                config: Config) -> None:
    """-1005 past ``max_queued_jobs``, or (authentication on) past the user's share
    ``max_queued_jobs_per_user``."""
    counts = Counter(pending_owners)
    total = sum(counts.values())
    limit = config.export.max_queued_jobs
    if total + new_jobs > limit:
        raise QueueFullError(f"the export queue is full ({total} device jobs waiting, "
                             f"limit {limit})")
    share = config.export.max_queued_jobs_per_user
    mine = counts.get(owner, 0)
    # with authentication off every client is the same anonymous user: no share to keep
    if config.auth.enabled and share > 0 and mine + new_jobs > share:
        raise QueueFullError(
            f"you have {mine} device jobs waiting; one user may queue at most {share} "
            f"(max_queued_jobs_per_user), so others can still export")


def check_not_nested(out_base: Path, export_dirs: dict[str, int]) -> None:
    """-1004 when ``out_base`` is, or lies inside, an existing export's directory."""
    for candidate in (out_base, *out_base.parents):
        if str(candidate) in export_dirs:
            raise PathNotAllowedError(
                f"path '{out_base}' lies inside an existing export's directory; choose a "
                "path outside every export directory")
