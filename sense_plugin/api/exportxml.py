"""XML rendering of exports: the ``getExportVideoStatus`` document and action answers."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from lxml.builder import E

from sense_plugin.api import results as r
from sense_plugin.api.render import render, ts
from sense_plugin.export.filetypes import mime_type
from sense_plugin.export.manifest import MANIFEST_NAME
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.filemodel import FileInfo
from sense_plugin.signing import SIGNATURE_NAME


@render.register
def _(result: r.ExportCreated) -> etree._Element:
    return E.exportid(str(result.export_id))


@render.register
def _(result: r.ExportChanged) -> list[etree._Element]:
    return [E.exportid(str(result.export_id)), E.status(result.status.value)]


@render.register
def _(result: r.ExportStatusList) -> bytes:
    return exports_bytes(result)


def exports_bytes(result: r.ExportStatusList,
                  fragment: Callable[[Export], bytes] | None = None) -> bytes:
    """The serialised ``<exports>`` element; ``fragment`` gives each ``<export>`` (the app's
    status cache passes its own, which keeps those of finished exports, api/statuscache.py)."""
    one = fragment or export_bytes
    total = "" if result.total is None else f' total="{result.total}"'
    parts = [f'<exports count="{len(result.exports)}"{total}>'.encode()]
    parts.extend(one(e) for e in result.exports)
    parts.append(b"</exports>")
    return b"".join(parts)


def export_bytes(export: Export) -> bytes:
    """The serialised ``<export>`` element."""
    data: bytes = etree.tostring(export_element(export), encoding="utf-8")
    return data


def export_element(export: Export) -> etree._Element:
    """One ``<export>`` with its devices, the VDG Sense fields first, then the extensions."""
    element = E.export(
        E.exportid(str(export.export_id)),
        E.path(export.path),
        E.status(export.status.value),
        E.bandwidth(str(export.bandwidth_kbps)),
        E.devices(*(job_element(j) for j in export.jobs)),
        E.name(export.name),
        E.format(export.fmt),
        E.created(ts(export.created_us)),
        E.owner(export.owner),
        E.bandwidthlimit(str(export.bandwidth_limit_kbps)),
        E.progress(str(export.progress)),
    )
    if export.retried_from is not None:
        element.append(E.retriedfrom(str(export.retried_from)))
    if export.expires_us is not None and export.status is Status.COMPLETED:
        element.append(E.expires("" if export.held else ts(export.expires_us)))
    for tag, value in export.options.describe():
        element.append(E(tag, value))
    if export.status in (Status.COMPLETED, Status.FAILED):  # finalised: manifest written
        element.append(E.manifest(E.name(MANIFEST_NAME), E.signature(SIGNATURE_NAME)))
    if export.held:
        element.append(E.hold("true"))
    return element


def job_element(job: Job) -> etree._Element:
    element = E.device(
        E.serverid(str(job.server_id)),
        E.deviceid(str(job.device_id)),
        E.starttime(ts(job.start_us)),
        E.endtime(ts(job.end_us)),
        E.progress(str(job.progress)),
        E.status(job.status.value),
        E.name(job.device_name),
        E.bandwidth(str(job.bandwidth_kbps)),
        E.bytes(str(job.bytes_written)),
    )
    if job.file is not None and job.status is Status.COMPLETED:
        element.append(E.files(*(file_element(info) for info in job.files)))
    if job.status is Status.FAILED:
        element.append(E.errorcode(str(job.errorcode)))
        element.append(E.description(job.description))
    elif job.status is Status.COMPLETED and job.description:  # e.g. one file per run
        element.append(E.description(job.description))
    element.append(E.stopped("true" if job.stopped else "false"))
    return element


def file_element(info: FileInfo) -> etree._Element:
    return E.file(
        E.name(info.name), E.size(str(info.size_bytes)), E.sha256(info.sha256),
        E.starttime(ts(info.first_frame_us)), E.endtime(ts(info.last_frame_us)),
        E.framecount(str(info.frame_count)),
        E.gaps(*(E.gap(E.starttime(ts(g.start_us)), E.endtime(ts(g.end_us)),
                       **({"reason": g.reason} if g.reason else {})) for g in info.gaps),
               count=str(len(info.gaps))),
        *([E.oversize("true")] if info.oversize else []),
        E.mimetype(mime_type(info.name)),
    )
