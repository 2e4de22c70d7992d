"""What ``serve`` logs as it starts: where to point a browser, which files, which devices."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sense_plugin import __version__
from sense_plugin.configmodel import Config, DeviceConfig


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
