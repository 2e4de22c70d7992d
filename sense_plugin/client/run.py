"""The ``export`` and ``status`` client commands: create, watch with progress, download."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from lxml import etree
from lxml.builder import E

from sense_plugin.client.http import ClientError, SenseClient
from sense_plugin.client.progress import ProgressView

__all__ = ["ProgressView", "run_export", "run_status"]

TERMINAL = frozenset({"COMPLETED", "FAILED", "REMOVED", "EXPIRED"})
WIRE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_RELATIVE = re.compile(r"^(?:now)?-(\d+(?:\.\d+)?)([smh])$", re.IGNORECASE)
_UNITS_S = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Kind:
    """The kind options of one ``export`` or ``snapshot`` call."""

    live: bool = False
    max_file_size_mb: int | None = None
    audio: bool = True
    snapshot: bool = False


def kind_elements(root: etree._Element, kind: Kind) -> None:
    """Append the kind's elements to an ``<export>`` request."""
    if kind.live:
        root.append(E.mode("live"))
    if kind.snapshot:
        root.append(E.output("snapshot"))
    if kind.max_file_size_mb is not None:
        root.append(E.maxfilesize(str(kind.max_file_size_mb)))
    if not kind.audio:
        root.append(E.audio("false"))


@dataclass(frozen=True)
class ExportOptions:
    """What ``sense-plugin export`` was asked for."""

    devices: tuple[str, ...]
    start: str
    end: str
    path: str | None = None
    fmt: str | None = None
    name: str | None = None
    bandwidth_kbps: int | None = None
    wait: bool = False
    out_dir: Path = Path(".")
    interval_s: float = 0.5
    kind: Kind = Kind()


def resolve_device(client: SenseClient, text: str) -> str:
    """A device id as given, or the id of the device with that name (case-insensitive)."""
    if text.isdigit():
        return text
    devices = client.command("getDeviceList").iterfind("devices/device")
    found = {d.findtext("name", "").lower(): d.findtext("deviceid", "") for d in devices}
    if text.lower() not in found:
        raise ClientError(-2, f"no device named '{text}' (known: {', '.join(found) or 'none'})")
    return str(found[text.lower()])


def resolve_time(text: str, server_now: str) -> str:
    """``now``, ``now-90s``/``now-10m``/``now-1h`` (also ``-10m``; from the server's clock),
    or the text as given (the server validates it)."""
    match = _RELATIVE.match(text.strip())
    if text.strip().lower() != "now" and match is None:
        return text
    moment = datetime.strptime(server_now, WIRE_FORMAT)
    if match is not None:
        moment -= timedelta(seconds=float(match.group(1)) * _UNITS_S[match.group(2).lower()])
    return moment.strftime(WIRE_FORMAT)[:-3]


def export_document(device_ids: list[str], start: str, end: str, opts: ExportOptions) -> bytes:
    """The exportVideo request body (a live export without ``end`` runs until stopped)."""
    root = E.export(E.devices(*(E.device(E.deviceid(d), E.starttime(start),
                                         *([E.endtime(end)] if end else []))
                                for d in device_ids)))
    kind_elements(root, opts.kind)
    for tag, value in (("path", opts.path), ("format", opts.fmt), ("name", opts.name),
                       ("bandwidth", opts.bandwidth_kbps)):
        if value is not None:
            root.append(E(tag, str(value)))
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return document


def create(client: SenseClient, body: bytes, typed: dict[str, str]) -> etree._Element:
    """``exportVideo`` with ``body``; a refusal names the devices as they were typed
    (``typed``: device id → the name given on the command line)."""
    try:
        return client.command("exportVideo", body=body)
    except ClientError as exc:
        text = exc.description
        for device_id, name in typed.items():
            if name != device_id:
                text = text.replace(device_id, f"'{name}' ({device_id})")
        raise type(exc)(exc.code, text) from None


def run_export(client: SenseClient, opts: ExportOptions, out: TextIO) -> int:
    """Create an export; with ``wait``, follow it and download its files and manifest."""
    server_now = client.server_time()
    device_ids = [resolve_device(client, d) for d in opts.devices]
    start = resolve_time(opts.start, server_now)
    end = resolve_time(opts.end, server_now) if opts.end else ""
    root = create(client, export_document(device_ids, start, end, opts),
                  dict(zip(device_ids, opts.devices, strict=True)))
    export_id = int(root.findtext("exportid") or 0)
    print(f"export {export_id} created ({start} .. {end})", file=out, flush=True)
    if not opts.wait:
        return 0
    try:
        export = follow(client, export_id, out, opts.interval_s)
    except KeyboardInterrupt:
        print(going_on(export_id), file=sys.stderr, flush=True)
        raise
    return download_all(client, export, opts.out_dir, out)


def going_on(export_id: int) -> str:
    """What Ctrl-C on a followed export leaves behind, and how to act on it."""
    return (f"\nsense-plugin: export {export_id} goes on on the server. Watch it: "
            f"sense-plugin status --export {export_id} --watch; stop it, keeping what it "
            f"wrote: sense-plugin stop {export_id}; delete it: sense-plugin remove {export_id}")


def follow(client: SenseClient, export_id: int, out: TextIO, interval_s: float) -> Any:
    """Poll one export until it is terminal, showing progress; returns its ``<export>``."""
    view = ProgressView(out)
    try:
        while True:
            root = client.command("getExportVideoStatus", exportid=export_id)
            export = root.find("exports/export")
            assert export is not None
            view.update([export])
            if export.findtext("status") in TERMINAL:
                break
            time.sleep(interval_s)
    finally:
        view.close()
    print(outcome(export), file=out, flush=True)
    for line in failures(export):
        print(line, file=out, flush=True)
    return export


def failures(export: Any) -> list[str]:
    """One line per failed device of an export: its result code and description."""
    return [f"export {export.findtext('exportid')} {d.findtext('name')}: FAILED "
            f"{d.findtext('errorcode')} {d.findtext('description')}"
            for d in export.iterfind("devices/device") if d.findtext("status") == "FAILED"]


def download_all(client: SenseClient, export: Any, out_dir: Path, out: TextIO) -> int:
    """Report failures, download every completed file, the manifest and its signature; 0 if
    COMPLETED."""
    export_id = int(export.findtext("exportid"))
    status = export.findtext("status")
    if status not in ("COMPLETED", "FAILED"):
        print(f"export {export_id} is {status}: nothing to download", file=out)
        return 1
    target = out_dir / f"export-{export_id}"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClientError(0, f"cannot create {target}: {exc.strerror}") from None
    for file_el in export.iterfind("devices/device/files/file"):
        name = file_el.findtext("name") or ""
        if not name or Path(name).name != name:
            raise ClientError(0, f"the server offered an unsafe file name '{name}'")
        size = client.download(export_id, name, target / name, file_el.findtext("sha256"))
        print(f"downloaded {target / name} ({size} bytes)", file=out)
    client.download(export_id, "manifest.xml", target / "manifest.xml")
    signature = export.findtext("manifest/signature")
    if signature and Path(signature).name == signature:
        client.download(export_id, signature, target / signature)
    print(f"downloaded {target / 'manifest.xml'}"
          f"{' and its signature' if signature else ''}; check with: sense-plugin verify "
          f"{target} --key <the server's signingkey>", file=out, flush=True)
    return 0 if status == "COMPLETED" else 1


def run_status(client: SenseClient, export_id: int | None, watch: bool, interval_s: float,
               out: TextIO) -> int:
    """Print one export (or every visible one); with ``watch``, follow the unfinished ones
    (1 when one of them did not complete)."""
    if watch:
        try:
            return _watch(client, export_id, interval_s, out)
        except KeyboardInterrupt:
            print("\nsense-plugin: stopped watching; the exports go on on the server",
                  file=sys.stderr, flush=True)
            raise
    params: dict[str, Any] = {} if export_id is None else {"exportid": export_id}
    for export in client.command("getExportVideoStatus", **params).findall("exports/export"):
        print(summary(export), file=out)
    return 0


def _watch(client: SenseClient, export_id: int | None, interval_s: float, out: TextIO) -> int:
    if export_id is not None:
        export = follow(client, export_id, out, interval_s)
        return 0 if export.findtext("status") == "COMPLETED" else 1
    exports = client.command("getExportVideoStatus").findall("exports/export")
    ids = [int(e.findtext("exportid") or 0) for e in exports
           if e.findtext("status") not in TERMINAL]
    if not ids:
        print("no unfinished exports to watch", file=out)
        return 0
    return watch_exports(client, ids, out, interval_s)


def watch_exports(client: SenseClient, export_ids: list[int], out: TextIO,
                  interval_s: float) -> int:
    """Follow these exports until every one has ended."""
    view = ProgressView(out)
    try:
        while True:
            exports = [client.command("getExportVideoStatus", exportid=i).find("exports/export")
                       for i in export_ids]
            view.update([e for e in exports if e is not None])
            if all(e is None or e.findtext("status") in TERMINAL for e in exports):
                break
            time.sleep(interval_s)
    finally:
        view.close()
    completed = True
    for export in exports:  # the outcome, in device order (changes came in arrival order)
        if export is not None:
            print(outcome(export), file=out, flush=True)
            for line in failures(export):
                print(line, file=out, flush=True)
            completed = completed and export.findtext("status") == "COMPLETED"
    return 0 if completed else 1


def outcome(export: Any) -> str:
    """``export N: STATUS (DEVICE STATUS, ...)`` for a finished export."""
    devices = ", ".join(f"{d.findtext('name')} {d.findtext('status')}"
                        for d in export.iterfind("devices/device"))
    return f"export {export.findtext('exportid')}: {export.findtext('status')} ({devices})"


def summary(export: Any) -> str:
    """One line per export: id, status, progress, created, owner, name, devices."""
    devices = ", ".join(f"{d.findtext('name')}={d.findtext('status')}"
                        for d in export.iterfind("devices/device"))
    return (f"{export.findtext('exportid')}\t{export.findtext('status')}\t"
            f"{export.findtext('progress')}%\t{export.findtext('created')}\t"
            f"{export.findtext('owner')}\t{export.findtext('name') or '-'}\t{devices}")

