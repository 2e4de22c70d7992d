"""Admission checks of a new export that need the engine's state (docs/exports.rst, SECURITY.rst).

Pure functions over the request and the exports in memory: output names unique within the
export, a bandwidth a worker can live with, the queue limits (global and per user, live
jobs counted like queued ones, ``docs/scheduling.rst``), and no export directory inside
another one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from sense_plugin.config import Config
from sense_plugin.errors import OutOfRangeError, PathNotAllowedError, QueueFullError
from sense_plugin.export.model import ExportRequest
from sense_plugin.outputpaths import output_name
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


def check_bandwidth(request: ExportRequest, config: Config) -> None:
    """-22 for a ``<bandwidth>`` whose share per device lies under ``min_bandwidth_kbps``: such
    a job would hold its worker for hours while writing next to nothing."""
    least = config.export.min_bandwidth_kbps
    devices = max(len(request.devices), 1)
    if 0 < request.bandwidth_kbps < least * devices:
        raise OutOfRangeError(
            f"bandwidth {request.bandwidth_kbps} kbit/s is below {least} kbit/s per device "
            f"(min_bandwidth_kbps) for {devices} device(s); ask for at least "
            f"{least * devices} or 0 (unlimited)")


def check_live(live_owners: Iterable[str], owner: str, request: ExportRequest,
               config: Config) -> None:
    """-1005 (authentication on) when the user would have more than
    ``max_live_jobs_per_user`` unfinished live device jobs."""
    limit = config.export.max_live_jobs_per_user
    if not request.options.live or not config.auth.enabled or limit <= 0:
        return
    mine = sum(1 for o in live_owners if o == owner)
    if mine + len(request.devices) > limit:
        raise QueueFullError(
            f"you have {mine} live device jobs unfinished; one user may have at most {limit} "
            "(max_live_jobs_per_user): stop or remove one first")


def check_queue(pending_owners: Iterable[str], owner: str, new_jobs: int,
                config: Config) -> None:
    """-1005 past ``max_queued_jobs``, or (authentication on) past the user's share
    ``max_queued_jobs_per_user``. ``pending_owners`` has one entry per device job waiting,
    live jobs not finished yet included (they wait for their recording, or hold a worker)."""
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
