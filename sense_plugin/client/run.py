"""The ``export`` and ``status`` client commands: create, watch with progress, download."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from lxml import etree
from lxml.builder import E

from sense_plugin.client.http import ClientError, SenseClient

TERMINAL = frozenset({"COMPLETED", "FAILED", "REMOVED", "EXPIRED"})
WIRE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_RELATIVE = re.compile(r"^(?:now)?-(\d+(?:\.\d+)?)([smh])$", re.IGNORECASE)
_UNITS_S = {"s": 1, "m": 60, "h": 3600}


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
    """The exportVideo request body."""
    root = E.export(E.devices(*(E.device(E.deviceid(d), E.starttime(start), E.endtime(end))
                                for d in device_ids)))
    for tag, value in (("path", opts.path), ("format", opts.fmt), ("name", opts.name),
                       ("bandwidth", opts.bandwidth_kbps)):
        if value is not None:
            root.append(E(tag, str(value)))
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return document


def run_export(client: SenseClient, opts: ExportOptions, out: TextIO) -> int:
    """Create an export; with ``wait``, follow it and download its files and manifest."""
    server_now = client.server_time()
    device_ids = [resolve_device(client, d) for d in opts.devices]
    start, end = resolve_time(opts.start, server_now), resolve_time(opts.end, server_now)
    root = client.command("exportVideo", body=export_document(device_ids, start, end, opts))
    export_id = int(root.findtext("exportid") or 0)
    print(f"export {export_id} created ({start} .. {end})", file=out, flush=True)
    if not opts.wait:
        return 0
    export = follow(client, export_id, out, opts.interval_s)
    return download_all(client, export, opts.out_dir, out)


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
                return export
            time.sleep(interval_s)
    finally:
        view.close()


def download_all(client: SenseClient, export: Any, out_dir: Path, out: TextIO) -> int:
    """Report failures, download every completed file and the manifest; 0 if COMPLETED."""
    export_id = int(export.findtext("exportid"))
    status = export.findtext("status")
    for device in export.iterfind("devices/device"):
        if device.findtext("status") == "FAILED":
            print(f"export {export_id} {device.findtext('name')}: FAILED "
                  f"{device.findtext('errorcode')} {device.findtext('description')}", file=out)
    if status not in ("COMPLETED", "FAILED"):
        print(f"export {export_id} is {status}: nothing to download", file=out)
        return 1
    target = out_dir / f"export-{export_id}"
    target.mkdir(parents=True, exist_ok=True)
    for file_el in export.iterfind("devices/device/files/file"):
        name = file_el.findtext("name") or ""
        if not name or Path(name).name != name:
            raise ClientError(0, f"the server offered an unsafe file name '{name}'")
        size = client.download(export_id, name, target / name, file_el.findtext("sha256"))
        print(f"downloaded {target / name} ({size} bytes)", file=out)
    client.download(export_id, "manifest.xml", target / "manifest.xml")
    print(f"downloaded {target / 'manifest.xml'}; check with: sense-plugin verify {target}",
          file=out, flush=True)
    return 0 if status == "COMPLETED" else 1


def run_status(client: SenseClient, export_id: int | None, watch: bool, interval_s: float,
               out: TextIO) -> int:
    """Print one export (or every visible one); with ``watch``, follow until all are done."""
    if export_id is not None and watch:
        follow(client, export_id, out, interval_s)
        return 0
    params: dict[str, Any] = {} if export_id is None else {"exportid": export_id}
    view = ProgressView(out) if watch else None
    try:
        while True:
            exports = client.command("getExportVideoStatus", **params).findall("exports/export")
            if view is None:
                for export in exports:
                    print(summary(export), file=out)
                return 0
            view.update(exports)
            if all(e.findtext("status") in TERMINAL for e in exports):
                return 0
            time.sleep(interval_s)
    finally:
        if view is not None:
            view.close()


def summary(export: Any) -> str:
    """One line per export: id, status, progress, created, owner, name, devices."""
    devices = ", ".join(f"{d.findtext('name')}={d.findtext('status')}"
                        for d in export.iterfind("devices/device"))
    return (f"{export.findtext('exportid')}\t{export.findtext('status')}\t"
            f"{export.findtext('progress')}%\t{export.findtext('created')}\t"
            f"{export.findtext('owner')}\t{export.findtext('name') or '-'}\t{devices}")


class ProgressView:
    """A tqdm bar per device when ``out`` is a terminal; plain lines on change otherwise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._bars: dict[tuple[str, int], Any] = {}
        self._last: dict[tuple[str, int], str] = {}

    def update(self, exports: list[Any]) -> None:
        for export in exports:
            export_id = export.findtext("exportid") or "?"
            for index, device in enumerate(export.iterfind("devices/device")):
                key = (export_id, index)
                name, status = device.findtext("name"), device.findtext("status")
                progress = int(device.findtext("progress") or 0)
                if self._tty:
                    self._bar(key, f"export {export_id} {name}", progress, status or "")
                    continue
                line = f"export {export_id} {name}: {status} {progress}%"
                if self._last.get(key) != line:
                    self._last[key] = line
                    print(line, file=self._out, flush=True)

    def _bar(self, key: tuple[str, int], label: str, progress: int, status: str) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        bar = self._bars.get(key)
        if bar is None:
            # a pty of unknown size reports 0x0 (tqdm then draws nothing): assume 80x24
            size = shutil.get_terminal_size((80, 24))
            bar = tqdm(total=100, file=self._out, position=len(self._bars),
                       ncols=size.columns or 80, nrows=size.lines or 24,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}|")
            self._bars[key] = bar
        bar.n = progress
        bar.set_description_str(f"{label} {status:<9}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
