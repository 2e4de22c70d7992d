"""One reader per TOML table (docs/configuration.rst): checks that span keys, paths, users,
devices."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sense_plugin import signing
from sense_plugin.configcustody import read_callback_hosts, read_webhooks
from sense_plugin.configmodel import (
    DEFAULT_DATA_DIR,
    ArchiveConfig,
    AuthConfig,
    ClusterConfig,
    Config,
    DeviceConfig,
    EvidenceConfig,
    ExportConfig,
    HttpConfig,
    ServerConfig,
    UserConfig,
)
from sense_plugin.configread import TableReader, default_of
from sense_plugin.demo_defaults import DEMO_DEVICES
from sense_plugin.naming import DEFAULT_PATTERN, DEFAULT_TIMEZONE, PatternError, compiled
from sense_plugin.permissions import PERMISSIONS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: ``rtsp_transport`` values: FFmpeg's transports, or auto (tried in that order).
RTSP_TRANSPORT_CHOICES = ("auto", "tcp", "udp", "http")
_TABLES = {"server", "http", "auth", "export", "archive", "evidence", "devices", "cluster",
           "webhooks"}


def keys_of(cls: type[DataclassInstance]) -> set[str]:
    """The TOML keys of a table: the fields of its dataclass."""
    return {f.name for f in fields(cls)}


class ConfigReader(TableReader):
    """Reads a whole parsed TOML document into a :class:`Config`."""

    def config(self, data: Mapping[str, Any]) -> Config:
        self.check_keys(data, "top level", _TABLES)
        server = self.server(
            self.table(data, "server", {"serverid", "name", "data_dir", "export_roots"})
        )
        http = self.http(self.table(data, "http", keys_of(HttpConfig)))
        auth = self.auth(self.table(data, "auth", keys_of(AuthConfig)))
        if not auth.enabled and not is_loopback(http.host):
            raise self.fail(
                "[auth] enabled",
                f"authentication may be disabled only on loopback, "
                f"but [http] host is '{http.host}'",
            )
        archive = self.settings(self.table(data, "archive", keys_of(ArchiveConfig)), "[archive]",
                                ArchiveConfig)
        devices = self.devices(data.get("devices", []), server.data_dir)
        added = archive.demo and not devices  # docs/archive.rst: three demo devices, stable ids
        if added:
            devices = self.devices([dict(d) for d in DEMO_DEVICES], server.data_dir)
        return Config(
            source=self.source,
            server=server,
            http=http,
            auth=auth,
            export=self.export(self.table(data, "export", keys_of(ExportConfig))),
            archive=archive,
            evidence=self.evidence(self.table(data, "evidence", keys_of(EvidenceConfig))),
            devices=devices,
            cluster=self.cluster(data),
            demo_devices_added=added,
            webhooks=read_webhooks(self, data.get("webhooks", [])),
        )

    def export(self, table: Mapping[str, Any]) -> ExportConfig:
        return self.settings(table, "[export]", ExportConfig,
                             callback_hosts=read_callback_hosts(self, table),
                             callback_secret=str(table.get("callback_secret", "")))

    def server(self, table: Mapping[str, Any]) -> ServerConfig:
        where = "[server]"
        data_dir = self.path(table.get("data_dir", DEFAULT_DATA_DIR), f"{where} data_dir")
        roots = table.get("export_roots", [str(data_dir / "exports")])
        if not isinstance(roots, list) or not roots:
            raise self.fail(f"{where} export_roots", "expected a non-empty list of paths")
        return ServerConfig(
            server_id=self.u64(table, where, "serverid"),
            name=self.setting(table, where, ServerConfig, "name"),
            data_dir=data_dir,
            export_roots=tuple(self.path(r, f"{where} export_roots") for r in roots),
        )

    def http(self, table: Mapping[str, Any]) -> HttpConfig:
        where = "[http]"
        cert, key = table.get("tls_cert"), table.get("tls_key")
        if (cert is None) != (key is None):
            raise self.fail(f"{where} tls_cert/tls_key", "give both or neither")
        return self.settings(
            table, where, HttpConfig,
            tls_cert=None if cert is None else self.path(cert, f"{where} tls_cert"),
            tls_key=None if key is None else self.path(key, f"{where} tls_key"),
            allowed_hosts=self.host_names(table.get("allowed_hosts", []), f"{where} allowed_hosts"),
        )

    def host_names(self, value: Any, where: str) -> tuple[str, ...]:
        """Host names, or origins ``http(s)://name[:port]``, as a list of strings."""
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of host names, got {value!r}")
        for name in value:
            if not isinstance(name, str) or not re.fullmatch(
                    r"(https?://)?[A-Za-z0-9._:\[\]-]+/?", name):
                raise self.fail(where, f"{name!r} is not a host name or http(s)://name[:port]")
        return tuple(value)

    def auth(self, table: Mapping[str, Any]) -> AuthConfig:
        where = "[auth]"
        users = table.get("users", [])
        if not isinstance(users, list):
            raise self.fail(f"{where} users", "expected an array of tables [[auth.users]]")
        parsed = tuple(self.user(u, f"[[auth.users]] #{i + 1}") for i, u in enumerate(users))
        names = [u.name for u in parsed]
        if len(set(names)) != len(names):
            raise self.fail(f"{where} users", "user names must be unique")
        enabled = self.setting(table, where, AuthConfig, "enabled")
        if enabled and not parsed:
            raise self.fail(f"{where} enabled", "authentication is enabled but no users are listed")
        return self.settings(table, where, AuthConfig, enabled=enabled, users=parsed)

    def user(self, table: Any, where: str) -> UserConfig:
        if not isinstance(table, Mapping):
            raise self.fail(where, "must be a table")
        self.check_keys(table, where, {"name", "password_hash", "permissions"})
        perms = self.get(table, where, "permissions", list,
                         sorted(default_of(UserConfig, "permissions")))
        bad = [p for p in perms if p not in PERMISSIONS]
        if bad:
            raise self.fail(
                f"{where} permissions",
                f"unknown permission {bad[0]!r} (known: {', '.join(sorted(PERMISSIONS))})",
            )
        password_hash = self.get(table, where, "password_hash", str, "")  # "": refused below
        if not password_hash.startswith("scrypt$"):
            raise self.fail(
                f"{where} password_hash",
                "expected a hash from `sense-plugin hash-password` (scrypt$...)",
            )
        return UserConfig(
            name=self.required(table, where, "name", str),
            password_hash=password_hash,
            permissions=frozenset(perms),
        )

    def evidence(self, table: Mapping[str, Any]) -> EvidenceConfig:
        """A configured signing key must exist and be an Ed25519 private key (checked now)."""
        if "signing_key" not in table:
            return EvidenceConfig()
        where = "[evidence] signing_key"
        path = self.path(table["signing_key"], where)
        try:
            signing.load_or_create(path, create=False)
        except signing.SigningKeyError as exc:
            raise self.fail(where, str(exc)) from None
        return EvidenceConfig(signing_key=path)

    def cluster(self, data: Mapping[str, Any]) -> ClusterConfig | None:
        """``[cluster]``, or None when the table is absent (a single server)."""
        if "cluster" not in data:
            return None
        w = "[cluster]"
        table = self.table(data, "cluster", keys_of(ClusterConfig))
        for key in ("database_url", "node_url", "site_secret"):
            if key not in table:
                raise self.fail(w, f"missing key '{key}'")
        url = self.required(table, w, "database_url", str)
        if not url.startswith(("postgresql://", "postgres://")):
            raise self.fail(f"{w} database_url",
                            f"expected a postgresql://user:password@host:port/db URL, got {url!r}")
        node_url = self.required(table, w, "node_url", str)
        if not re.fullmatch(r"https?://[^/\s]+/?", node_url):
            raise self.fail(f"{w} node_url",
                            f"expected http(s)://host:port (how other servers reach this one), "
                            f"got {node_url!r}")
        secret = self.required(table, w, "site_secret", str)
        if len(secret) < 16:
            raise self.fail(f"{w} site_secret", "must be at least 16 characters (e.g. "
                            "`python3 -c 'import secrets; print(secrets.token_hex(32))'`)")
        heartbeat = self.setting(table, w, ClusterConfig, "heartbeat_s")
        timeout = self.setting(table, w, ClusterConfig, "node_timeout_s")
        if timeout < 3 * heartbeat:
            raise self.fail(f"{w} node_timeout_s",
                            f"{timeout:g} is below three heartbeats (3 x {heartbeat:g} s)")
        shared = self.setting(table, w, ClusterConfig, "shared_export_root")
        if shared and "export_roots" not in data.get("server", {}):
            raise self.fail(f"{w} shared_export_root", "needs [server] export_roots set to the "
                            "shared paths (the default, under data_dir, is this server's own)")
        return ClusterConfig(url, node_url.rstrip("/"), secret, heartbeat, timeout,
                             shared_export_root=shared)

    def devices(self, items: Any, data_dir: Path) -> tuple[DeviceConfig, ...]:
        if not isinstance(items, list):
            raise self.fail("[[devices]]", "expected an array of tables")
        devices = tuple(
            self.device(d, f"[[devices]] #{i + 1}", data_dir) for i, d in enumerate(items)
        )
        ids = [d.device_id for d in devices]
        if len(set(ids)) != len(ids):
            raise self.fail("[[devices]]", "deviceid values must be unique")
        return devices

    def device(self, table: Any, where: str, data_dir: Path) -> DeviceConfig:
        if not isinstance(table, Mapping):
            raise self.fail(where, "must be a table")
        self.check_keys(table, where, {"deviceid", "name", "enabled", "archive_dir", "source",
                                       "archive_pattern", "archive_timezone", "rtsp_transport",
                                       "video_stall_s"})
        device_id = self.u64(table, where, "deviceid")
        archive_dir = table.get("archive_dir")
        source = table.get("source")
        if source is not None and (not isinstance(source, str) or not source):
            raise self.fail(f"{where} source", "expected a non-empty URL or path string")
        if source is not None and "://" not in source:  # a file: relative to the config file
            source = str(self.path(source, f"{where} source"))
        pattern, zone = self.naming(table, f"{where} (deviceid {device_id})")
        if source is not None and (pattern, zone) != (DEFAULT_PATTERN, DEFAULT_TIMEZONE):
            raise self.fail(f"{where} (deviceid {device_id}) archive_pattern",
                            "a device with a source is recorded by this server, which names "
                            "its segments itself: leave archive_pattern and archive_timezone "
                            "out (they describe archives written by other programs)")
        return DeviceConfig(
            device_id=device_id,
            name=self.get(table, where, "name", str, f"Camera {device_id}"),
            enabled=self.setting(table, where, DeviceConfig, "enabled"),
            archive_dir=(
                self.path(archive_dir, f"{where} archive_dir")
                if archive_dir is not None
                else data_dir / "archive" / str(device_id)
            ),
            source=source,
            archive_pattern=pattern,
            archive_timezone=zone,
            archive_foreign=source is None and (archive_dir is not None
                                                or pattern != DEFAULT_PATTERN),
            rtsp_transport=self.transport(table, where),
            video_stall_s=self.setting(table, where, DeviceConfig, "video_stall_s"),
        )

    def transport(self, table: Mapping[str, Any], where: str) -> str:
        """``rtsp_transport``: one of :data:`RTSP_TRANSPORT_CHOICES`."""
        value = self.setting(table, where, DeviceConfig, "rtsp_transport")
        if value not in RTSP_TRANSPORT_CHOICES:
            raise self.fail(f"{where} rtsp_transport", f"{value!r} is not one of "
                            f"{', '.join(RTSP_TRANSPORT_CHOICES)}")
        return str(value)

    def naming(self, table: Mapping[str, Any], where: str) -> tuple[str, str]:
        """``archive_pattern`` and ``archive_timezone``, checked by compiling them."""
        pattern = self.setting(table, where, DeviceConfig, "archive_pattern")
        zone = self.setting(table, where, DeviceConfig, "archive_timezone")
        try:
            compiled(pattern, DEFAULT_TIMEZONE)
        except PatternError as exc:
            raise self.fail(f"{where} archive_pattern", f"{pattern!r} {exc}") from None
        try:
            compiled(pattern, zone)
        except PatternError as exc:
            raise self.fail(f"{where} archive_timezone", str(exc)) from None
        return pattern, zone


def is_loopback(host: str) -> bool:
    """True for loopback addresses and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
