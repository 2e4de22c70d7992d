"""Rebuild lost job-store records from the manifests on disk (blocking; I/O executor).

A finished export's ``manifest.xml`` holds everything its status needs: owner, times, format,
name, path, cap, and per device the range, status, file facts or error. When the store is
missing or empty but manifests are on disk, the engine re-inserts these records under their
own ids instead of starting with an empty history.

A manifest is read without following any symlink (the directory is reached from its export
root, the file opened ``O_NOFOLLOW``). One that cannot be read or is not a manifest of that
export is set aside: left on disk untouched, named in an ERROR, and its export is not
rebuilt; the others are, and the server starts (docs/verify.rst).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import IO

from lxml import etree

from sense_plugin import safefs
from sense_plugin.errors import SenseError
from sense_plugin.export import ids
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.renderdoc import read_render
from sense_plugin.export.store import ExportStore, StoreDamagedError
from sense_plugin.filemodel import FileInfo, Gap
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.timestamps import parse_timestamp

log = logging.getLogger(__name__)


def recover(store: ExportStore, roots: tuple[Path, ...], data_dir: Path,
            retention_hours: float) -> int:
    """Re-insert the finished exports the store lacks from their manifests; the last id.

    Blocking (run on the store thread at open). The last id is the highest of the store's
    sequence, the high-water mark file and every export directory on disk.
    """
    on_disk, finished = ids.scan_export_dirs(roots)
    known = store.ids()
    orphans = sorted(i for i in finished if i not in known)
    rebuilt = []
    for export_id in orphans:
        try:
            export = export_from_manifest(on_disk[export_id], retention_hours, roots)
        except StoreDamagedError as exc:
            log.error("%s; that export is left out of the store (its directory is left as it "
                      "is) and the others are rebuilt", exc)
            continue
        store.insert(export)
        store.update_export(export)
        rebuilt.append(export_id)
    if rebuilt:
        log.warning("the job store %s lacked %d finished exports found on disk (it was missing "
                    "or emptied); rebuilt them from their manifests: %s", store.path,
                    len(rebuilt), ", ".join(map(str, rebuilt)))
    return max(store.max_id(), ids.read_high_water(data_dir), max(on_disk, default=0))


def export_from_manifest(directory: Path, retention_hours: float,
                         roots: tuple[Path, ...] | None = None) -> Export:
    """The :class:`Export` a manifest describes; StoreDamagedError naming it if unreadable.

    With ``roots``, ``directory`` is reached from its root without following a symlink;
    without, only its last component is not followed. The manifest itself never is.

    The manifest is this server's own and has no size limit: a split day of many devices runs
    to hundreds of MiB (docs/security.rst, "Manifest size"). It is read as a stream, one
    ``<device>`` at a time, so only the export being rebuilt is held, not the whole tree.
    """
    path = directory / MANIFEST_NAME
    try:
        with os.fdopen(_open_manifest(directory, roots), "rb") as stream:
            return _stream_export(stream, directory, retention_hours)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SenseError,
            etree.XMLSyntaxError) as exc:
        raise StoreDamagedError(f"the job store lost export {directory.name} and its manifest "
                                f"{path} cannot be read to rebuild it ({exc})") from None


def _stream_export(stream: IO[bytes], directory: Path, retention_hours: float) -> Export:
    export: Export | None = None
    for _, device in etree.iterparse(stream, events=("end",), tag="device",
                                     resolve_entities=False, no_network=True, load_dtd=False):
        devices = device.getparent()
        if devices is None or devices.tag != "devices":
            continue
        if export is None:
            export = _export(devices.getparent(), directory, retention_hours)
        export.jobs.append(_job(export.export_id, len(export.jobs), device,
                                export.finished_us or 0))
        device.clear()
        while device.getprevious() is not None:  # the devices already read
            del devices[0]
    if export is None:
        raise ValueError("it lists no device")
    return export


def _open_manifest(directory: Path, roots: tuple[Path, ...] | None) -> int:
    """The manifest opened read-only, no symlink followed on the way (ValueError naming a
    symlinked manifest's target)."""
    dir_fd = safefs.open_dir(directory, roots) if roots is not None else \
        os.open(directory, safefs.DIR_FLAGS)
    try:
        try:
            return safefs.open_regular(dir_fd, MANIFEST_NAME)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                target = os.readlink(MANIFEST_NAME, dir_fd=dir_fd)
                raise ValueError(f"it is a symlink to {target}, not followed") from None
            raise
    finally:
        os.close(dir_fd)


def _text(element: etree._Element, tag: str) -> str:
    value = element.findtext(tag)
    if value is None:
        raise ValueError(f"<{tag}> is missing")
    return str(value)


def _export(root: etree._Element, directory: Path, retention_hours: float) -> Export:
    export_id = int(_text(root, "exportid"))
    if str(export_id) != directory.name:
        raise ValueError(f"it names export {export_id}")
    finished_us = parse_timestamp(_text(root, "finished"))
    retried = root.findtext("retriedfrom")
    return Export(
        export_id=export_id, owner=_text(root, "owner"),
        created_us=parse_timestamp(_text(root, "created")), path=root.findtext("path") or "",
        out_base=str(directory.parent), fmt=_text(root, "format"), name=root.findtext("name")
        or "", bandwidth_limit_kbps=int(root.findtext("bandwidthlimit") or 0),
        retried_from=int(retried) if retried else None, finished_us=finished_us,
        expires_us=finished_us + int(retention_hours * 3600 * 1_000_000),
        options=_options(root),
    )


def _options(root: etree._Element) -> ExportOptions:
    """The kind and options a manifest names (older manifests, without them: the defaults;
    without ``<render>``: a stream copy)."""
    defaults = ExportOptions()
    render, timestamps = read_render(root)
    return ExportOptions(
        render=render, timestamps=timestamps,
        mode=root.findtext("mode") or defaults.mode,
        output=root.findtext("output") or defaults.output,
        audio=(root.findtext("audio") or "true") == "true",
        maxfilesize_mb=int(root.findtext("maxfilesize") or 0),
        keepalive_s=int(root.findtext("keepalive") or 0),
    )


def _job(export_id: int, index: int, device: etree._Element, finished_us: int) -> Job:
    status = Status(_text(device, "status"))
    infos = tuple(_file(f) for f in device.iterfind("file"))
    info = infos[0] if infos else None
    return Job(
        export_id=export_id, index=index, server_id=int(_text(device, "serverid")),
        device_id=int(_text(device, "deviceid")), device_name=_text(device, "name"),
        start_us=parse_timestamp(_text(device, "starttime")),
        end_us=parse_timestamp(_text(device, "endtime")), status=status,
        progress=100 if status is Status.COMPLETED else 0,
        bytes_written=sum(i.size_bytes for i in infos),
        errorcode=int(device.findtext("errorcode") or 0),
        description=device.findtext("description") or "", finished_us=finished_us, file=info,
        stopped=device.findtext("stopped") == "true", parts=infos if len(infos) > 1 else (),
    )


def _file(file_el: etree._Element) -> FileInfo:
    return FileInfo(
        name=_text(file_el, "name"), size_bytes=int(_text(file_el, "size")),
        sha256=_text(file_el, "sha256"),
        first_frame_us=parse_timestamp(_text(file_el, "firstframe")),
        last_frame_us=parse_timestamp(_text(file_el, "lastframe")),
        frame_count=int(_text(file_el, "framecount")),
        gaps=tuple(Gap(parse_timestamp(_text(g, "starttime")),
                       parse_timestamp(_text(g, "endtime")), g.get("reason", ""))
                   for g in file_el.iterfind("gaps/gap")),
        oversize=file_el.findtext("oversize") == "true",
    )
