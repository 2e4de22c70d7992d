"""The evidence manifest (``manifest.xml``): pure build/parse functions and an atomic write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from lxml.builder import E

from sense_plugin import safefs
from sense_plugin.export.auditxml import audit_element
from sense_plugin.export.custodystore import AuditRecord
from sense_plugin.export.filetypes import mime_type
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.renderdoc import render_elements
from sense_plugin.filemodel import FileInfo
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.signing import SIGNATURE_NAME, Signer
from sense_plugin.timestamps import format_timestamp

MANIFEST_NAME = "manifest.xml"
MANIFEST_VERSION = "1"


@dataclass(frozen=True)
class ListedFile:
    """A file as the manifest lists it: what ``verify`` checks."""

    name: str
    size_bytes: int
    sha256: str


def build_manifest(export: Export, status: Status, finished_us: int,
                   audit: Sequence[AuditRecord] = ()) -> bytes:
    """The manifest document of a finished export (schemas/manifest.xsd); ``audit``: its
    audit records up to now (``<audit>``)."""
    root = E.manifest(
        E.exportid(str(export.export_id)),
        E.owner(export.owner),
        E.created(format_timestamp(export.created_us)),
        E.finished(format_timestamp(finished_us)),
        E.format(export.fmt),
        E.name(export.name),
        E.path(export.path),
        E.status(status.value),
        E.bandwidthlimit(str(export.bandwidth_limit_kbps)),
        *([] if export.retried_from is None else [E.retriedfrom(str(export.retried_from))]),
        *(E(tag, value) for tag, value in export.options.describe()),
        rendering_element(export.options),
        *render_elements(export.options),
        E.devices(*(_device(job, export.options) for job in export.jobs)),
        *([audit_element(audit)] if audit else []),
        version=MANIFEST_VERSION,
    )
    body: bytes = etree.tostring(root, xml_declaration=False, encoding="UTF-8",
                                 pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


#: Render options that do not apply to a still image (``<output>snapshot</output>``).
_NOT_FOR_STILLS = frozenset({"codec", "quality", "crf", "fps"})


def rendering_element(options: ExportOptions) -> etree._Element:
    """``<rendering>``: how the files relate to the recorded stream, with every option applied.

    A reviewer reads here whether a file is the original encoded stream (``stream copy``,
    bit-exact packets; a subtitle track, if any, is added beside it) or a re-encoding.
    """
    if options.snapshot:
        method = "snapshot: one decoded frame encoded as an image"
    elif options.render is not None:
        method = "rendered: decoded, filtered and re-encoded; not the original stream"
    else:
        method = "stream copy: the original encoded stream, not re-encoded"
    element = E.rendering(E.method(method))
    if options.timestamps == "subtitle" and not options.snapshot:
        element.append(E.option("archive time, one cue per second", name="subtitles"))
    if options.render is not None:
        for name, value in options.render.describe():
            if not (options.snapshot and name in _NOT_FOR_STILLS):
                element.append(E.option(value, name=name))
    return element


def _device(job: Job, options: ExportOptions) -> etree._Element:
    """One device; with a ``<render>`` of its own, how its files were made (``<rendering>``)."""
    element = E.device(
        E.serverid(str(job.server_id)),
        E.deviceid(str(job.device_id)),
        E.name(job.device_name),
        E.starttime(format_timestamp(job.start_us)),
        E.endtime(format_timestamp(job.end_us)),
        E.status(job.status.value),
    )
    if job.file is not None and job.status is Status.COMPLETED:
        element.extend(_file(info) for info in job.files)
    elif job.status is Status.FAILED:
        element.append(E.errorcode(str(job.errorcode)))
        element.append(E.description(job.description))
    if job.stopped:
        element.append(E.stopped("true"))
    if job.index in dict(options.device_renders):
        element.append(rendering_element(options.for_device(job.index)))
    return element


def _file(info: FileInfo) -> etree._Element:
    return E.file(
        E.name(info.name),
        E.size(str(info.size_bytes)),
        E.sha256(info.sha256),
        E.firstframe(format_timestamp(info.first_frame_us)),
        E.lastframe(format_timestamp(info.last_frame_us)),
        E.framecount(str(info.frame_count)),
        E.gaps(*(E.gap(E.starttime(format_timestamp(g.start_us)),
                       E.endtime(format_timestamp(g.end_us)),
                       **({"reason": g.reason} if g.reason else {})) for g in info.gaps),
               count=str(len(info.gaps))),
        *([E.oversize("true")] if info.oversize else []),
        E.mimetype(mime_type(info.name)),
    )


def parse_manifest(data: bytes) -> list[ListedFile]:
    """The files a manifest lists; ``ValueError`` naming the problem if it is not one.

    No size limit: the limits on exports allow manifests of hundreds of MiB (a day split into
    1-MB parts is about 16 MiB per device; docs/security.rst, "Manifest size"), and every file
    listed is hashed anyway. The parser stays hardened: no DTD, no entities, no network.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"manifest is not well-formed XML: {exc}") from None
    if root.tag != "manifest":
        raise ValueError(f"root element is <{root.tag}>, expected <manifest>")
    listed = []
    for element in root.iterfind("devices/device/file"):
        name, size, digest = (element.findtext(t) for t in ("name", "size", "sha256"))
        if not name or not size or not size.isdigit() or not digest:
            raise ValueError("a <file> lacks a valid <name>, <size> or <sha256>")
        if name != Path(name).name or name in (".", "..", MANIFEST_NAME, SIGNATURE_NAME):
            raise ValueError(f"file name '{name}' is not a plain file name")
        listed.append(ListedFile(name, int(size), digest.lower()))
    return listed


def device_failures(data: bytes) -> tuple[str, int, list[str]]:
    """(export status, device count, one line per FAILED device) of a parsed-OK manifest."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(data, parser)
    devices = root.findall("devices/device")
    failures = [
        f"device {d.findtext('deviceid')} ({d.findtext('name')}): errorcode "
        f"{d.findtext('errorcode')}: {d.findtext('description')}"
        for d in devices if d.findtext("status") == Status.FAILED.value
    ]
    return root.findtext("status") or "", len(devices), failures


def write_manifest(export: Export, status: Status, finished_us: int,
                   roots: tuple[Path, ...], signer: Signer | None = None,
                   audit: Sequence[AuditRecord] = ()) -> Path:
    """Write ``manifest.xml`` (and its signature ``manifest.sig``) into the export directory.

    Blocking. The directory is reached from its root without following symlinks and each file
    is created exclusively under a temporary name, fsynced and renamed (:mod:`safefs`). The
    signature is written first, so a manifest on disk always has its signature beside it.
    """
    data = build_manifest(export, status, finished_us, audit)
    with safefs.opened_dir(export.directory, roots) as fd:
        if signer is not None:
            safefs.write_atomic(fd, SIGNATURE_NAME, signer.sign(data))
        safefs.write_atomic(fd, MANIFEST_NAME, data)
    return export.directory / MANIFEST_NAME
