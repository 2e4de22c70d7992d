"""What ``serve`` sets up and logs as it starts: private file modes, where to point a browser,
which files, which devices."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from sense_plugin import __version__
from sense_plugin.configmodel import Config, DeviceConfig

#: Bits no file or directory the server creates grants: write for its group, anything for
#: other accounts (files 0640, directories 0750).
PRIVATE_UMASK = 0o027


def keep_data_private(config: Config) -> None:
    """Create every file 0640 and directory 0750 (or stricter) whatever the inherited umask,
    and close an existing ``data_dir`` to other accounts (blocking, before the loop runs).

    The umask is the one place that covers every writer, worker processes and their ffmpeg
    children included (they inherit it). Closing ``data_dir`` itself (0750) also shuts out what
    an earlier, looser run left beneath it: the recordings, stores and keys under it are reached
    only through it. See docs/security.rst, "File modes".
    """
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)  # keep a stricter umask stricter
    try:  # made later (under this umask) when missing: a failed start leaves nothing behind
        mode = config.server.data_dir.stat().st_mode & 0o7777
    except FileNotFoundError:
        return
    if mode & PRIVATE_UMASK:
        config.server.data_dir.chmod(mode & ~PRIVATE_UMASK)


def base_url(config: Config) -> str:
    """``http://127.0.0.1:8080/``: the configured address as a client writes it."""
    scheme = "https" if config.http.tls_cert else "http"
    host = config.http.host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{host}:{config.http.port}/"


def redact(url: str) -> str:
    """A source URL without its password (``rtsp://user:***@cam/``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def startup_lines(config: Config) -> list[str]:
    """Version and address, files, authentication, and one line per device."""
    auth = config.auth
    users = f"on, {len(auth.users)} users" if auth.enabled else "off (loopback only)"
    lines = [f"sense_plugin {__version__} starting on {base_url(config)}",
             f"configuration {config.source}; data in {config.server.data_dir}; "
             f"exports in {config.server.export_roots[0]}",
             f"authentication {users}"]
    if config.demo_devices_added:
        names = ", ".join(d.name for d in config.devices)
        lines.append(f"no [[devices]] configured: added {len(config.devices)} demo devices "
                     f"({names})")
    lines += [device_line(config, device) for device in config.devices]
    return lines


def device_line(config: Config, device: DeviceConfig) -> str:
    if device.source:
        feed = f"recorded from {redact(device.source)}"
    elif config.archive.demo:
        feed = "live demo (synthetic source)"
    else:
        feed = f"archive only ({device.archive_dir})"
    state = "" if device.enabled else ", disabled"
    return f"device {device.name} ({device.device_id}): {feed}{state}"
