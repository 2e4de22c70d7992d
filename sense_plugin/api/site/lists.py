"""``getDivaList`` and ``getDeviceList`` for the whole site (docs/site.rst), from ``nodes.Site``.

Imported by the device commands, so it must not import psycopg: ``Site`` is a type only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sense_plugin.api import results as r
from sense_plugin.errors import NoServerError

if TYPE_CHECKING:
    from sense_plugin.cluster.nodes import Site


def _known(server_id: int | None, known: set[int]) -> None:
    if server_id is not None and server_id not in known:
        raise NoServerError(f"serverid {server_id} is not known on this site")


async def site_diva_list(site: Site, server_id: int | None) -> r.DivaList:
    """Every server of the site (or the one ``server_id``), online or offline."""
    servers = await site.servers()
    _known(server_id, {s.server_id for s in servers})
    return r.DivaList(tuple(
        r.ServerRow(s.server_id, s.name, status="online" if s.online else "offline")
        for s in servers if server_id in (None, s.server_id)))


async def site_device_list(site: Site, server_id: int | None) -> r.DeviceList:
    """Every device of the site (or of the server ``server_id``) with its serverid."""
    devices = await site.devices()
    if server_id is not None:
        _known(server_id, {s.server_id for s in await site.servers()})
    return r.DeviceList(tuple(
        r.DeviceRow(d.name, d.server_id, d.device_id, d.status)
        for d in devices if server_id in (None, d.server_id)))
