"""Servers of one site for tests and benchmarks: configs on one PostgreSQL.

``site_config`` writes one server's TOML, ``start_server`` starts it (``ServerProcess.start``
waits until ``/info`` answers), ``start_site`` starts several alike and ``stop_site`` stops
those still running. A test adds what is its own with ``server_keys``, ``cluster_keys`` and
``tables``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sense_plugin.testing.serverprocess import ServerProcess

SECRET = "test-site-secret-0123456789abcdef"
BASE_SERVER_ID = 1001


def device_lines(server_id: int, devices: Mapping[int, Path | None] | None) -> list[str]:
    """``[[devices]]`` tables: ``Cam<id>`` with its archive, or by default two archive-only
    cameras of the server's own."""
    if devices is None:
        return [line for n in range(2) for line in (
            "[[devices]]", f'deviceid = "{server_id * 100 + n}"',
            f'name = "Camera {n} of {server_id}"')]
    lines = []
    for device_id, archive in devices.items():
        lines += ["[[devices]]", f'deviceid = "{device_id}"', f'name = "Cam{device_id}"']
        if archive is not None:
            lines.append(f'archive_dir = "{archive}"')
    return lines


def site_config(server: ServerProcess, root: Path, server_id: int, database_url: str, *,
                heartbeat_s: float = 0.5, node_timeout_s: float | None = None,
                devices: Mapping[int, Path | None] | None = None,
                server_keys: Sequence[str] = (), cluster_keys: Sequence[str] = (),
                tables: Sequence[str] = ()) -> str:
    """The TOML of one server of the site.

    ``node_timeout_s`` defaults to the longer of 60 s and three heartbeats; ``server_keys``
    and ``cluster_keys`` are extra lines of ``[server]`` and ``[cluster]``, ``tables`` extra
    tables (header lines included) before the devices.
    """
    if node_timeout_s is None:
        node_timeout_s = max(60.0, 3 * heartbeat_s)
    lines = [
        "[server]", f'serverid = "{server_id}"', f'name = "Recorder {server_id}"',
        f'data_dir = "{root / f"data-{server_id}"}"', *server_keys,
        "[archive]", "demo = false",
        "[cluster]", f'database_url = "{database_url}"',
        f'node_url = "{server.url}"', f'site_secret = "{SECRET}"',
        f"heartbeat_s = {heartbeat_s}", f"node_timeout_s = {node_timeout_s}", *cluster_keys,
        *tables, *device_lines(server_id, devices),
    ]
    return "\n".join(lines) + "\n"


def start_server(root: Path, server_id: int, database_url: str, *,
                 heartbeat_s: float = 0.5, node_timeout_s: float | None = None,
                 devices: Mapping[int, Path | None] | None = None,
                 server_keys: Sequence[str] = (), cluster_keys: Sequence[str] = (),
                 tables: Sequence[str] = ()) -> ServerProcess:
    """A started ``sense-plugin serve`` of the site (``server-ID.toml`` and ``.log`` in
    ``root``); the keywords are ``site_config``'s."""
    config = root / f"server-{server_id}.toml"
    server = ServerProcess(config, root / f"server-{server_id}.log")
    config.write_text(site_config(
        server, root, server_id, database_url, heartbeat_s=heartbeat_s,
        node_timeout_s=node_timeout_s, devices=devices, server_keys=server_keys,
        cluster_keys=cluster_keys, tables=tables))
    server.start()
    return server


def start_site(root: Path, database_url: str, count: int = 3, *, heartbeat_s: float = 0.5
               ) -> list[ServerProcess]:
    """``count`` started servers of one site, ids from ``BASE_SERVER_ID``, two archive-only
    cameras each; those started are stopped again if one does not start."""
    servers: list[ServerProcess] = []
    try:
        for i in range(count):
            servers.append(start_server(root, BASE_SERVER_ID + i, database_url,
                                        heartbeat_s=heartbeat_s))
    except BaseException:
        stop_site(servers)
        raise
    return servers


def stop_site(servers: Iterable[ServerProcess]) -> None:
    """Stop (SIGTERM, then wait) every server that is still running."""
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
