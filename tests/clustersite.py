"""Servers of one site for the cluster tests and benchmarks: configs on one PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.serverproc import ServerProcess

SECRET = "test-site-secret-0123456789abcdef"
BASE_SERVER_ID = 1001


def site_config(server: ServerProcess, root: Path, server_id: int, database_url: str,
                *, heartbeat_s: float = 0.5, devices: int = 2) -> str:
    """The TOML of one server of the site: ``devices`` archive-only devices of its own."""
    lines = [
        "[server]", f'serverid = "{server_id}"', f'name = "Recorder {server_id}"',
        f'data_dir = "{root / f"data-{server_id}"}"',
        "[archive]", "demo = false",
        "[cluster]", f'database_url = "{database_url}"',
        f'node_url = "{server.url}"', f'site_secret = "{SECRET}"',
        f"heartbeat_s = {heartbeat_s}", f"node_timeout_s = {max(60.0, 3 * heartbeat_s)}",
    ]
    for n in range(devices):
        lines += ["[[devices]]", f'deviceid = "{server_id * 100 + n}"',
                  f'name = "Camera {n} of {server_id}"']
    return "\n".join(lines) + "\n"


def start_site(root: Path, database_url: str, count: int = 3, **kwargs: float
               ) -> list[ServerProcess]:
    """``count`` started ``sense-plugin serve`` processes of one site."""
    servers = []
    for i in range(count):
        server_id = BASE_SERVER_ID + i
        config = root / f"server-{server_id}.toml"
        server = ServerProcess(config, root / f"server-{server_id}.log")
        config.write_text(site_config(server, root, server_id, database_url, **kwargs))  # type: ignore[arg-type]
        server.start()
        servers.append(server)
    return servers
