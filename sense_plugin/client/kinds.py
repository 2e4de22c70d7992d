"""Client side of the export kinds (docs/exports.rst): ``snapshot``, ``export --live/--stop/
--max-file-size/--no-audio``."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from lxml import etree
from lxml.builder import E

from sense_plugin.client.http import ClientError, SenseClient
from sense_plugin.client.run import (
    Kind,
    create,
    download_all,
    follow,
    kind_elements,
    resolve_device,
    resolve_time,
)

#: What ``stop`` and ``remove`` did, by the export's status afterwards.
OUTCOMES = {"COMPLETED": " (what it wrote is kept)", "REMOVED": " (nothing is kept)"}


def run_action(client: SenseClient, action: str, export_id: int, out: TextIO) -> int:
    """``stop`` or ``remove`` one export."""
    root = client.command("exportVideo", action=action, exportid=export_id)
    status = root.findtext("status") or ""
    done = "stopped" if action == "stop" else "removed"
    print(f"export {export_id} {done}: {status}{OUTCOMES.get(status, '')}".rstrip(": "),
          file=out)
    return 0


def run_snapshot(client: SenseClient, devices: list[str], at: str | None, fmt: str | None,
                 path: str | None, out_dir: Path, interval_s: float, out: TextIO) -> int:
    """One snapshot export of the devices; waits and downloads the images."""
    ids = [resolve_device(client, d) for d in devices]
    typed = dict(zip(ids, devices, strict=True))
    instant = None if at is None else resolve_time(at, client.server_time())
    items = [E.device(E.deviceid(d), *([] if instant is None else [E.starttime(instant)]))
             for d in ids]
    root = E.export(E.devices(*items))
    kind_elements(root, Kind(live=instant is None, snapshot=True))
    for tag, value in (("format", fmt), ("path", path)):
        if value is not None:
            root.append(E(tag, value))
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    created = create(client, body, typed)
    export_id = int(created.findtext("exportid") or 0)
    if export_id == 0:
        raise ClientError(-1, "the server answered no export id")
    print(f"export {export_id} created (snapshot at {instant or 'the newest frame'})", file=out)
    return download_all(client, follow(client, export_id, out, interval_s), out_dir, out)
