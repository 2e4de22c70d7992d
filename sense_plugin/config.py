"""Load and validate the TOML configuration once into frozen dataclasses (SPEC §8).

The dataclasses live in ``configmodel`` and are re-exported here.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sense_plugin.archive.naming import DEFAULT_PATTERN, DEFAULT_TIMEZONE, PatternError, compiled
from sense_plugin.configmodel import (
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
from sense_plugin.errors import ConfigError
from sense_plugin.evidence import signing

__all__ = [
    "ArchiveConfig",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "DeviceConfig",
    "EvidenceConfig",
    "ExportConfig",
    "HttpConfig",
    "ServerConfig",
    "UserConfig",
    "default_config_path",
    "load_config",
    "config_from_dict",
    "is_loopback",
]

#: The devices added when ``[archive] demo = true`` and no ``[[devices]]`` are configured
#: (the ids and names of the shipped default configuration).
DEMO_DEVICES = (
    {"deviceid": "9890179877273119875", "name": "Entrance"},
    {"deviceid": "9890179877273119876", "name": "Parking"},
    {"deviceid": "9890179877273119877", "name": "Lobby"},
)
PERMISSIONS = frozenset({"view", "export", "admin"})
MAX_U64 = 2**64 - 1
#: Shipped default configuration (a packaged copy of ``config/default.toml``).
PACKAGED_DEFAULT = Path(__file__).with_name("defaults") / "default.toml"
#: The source tree's deployment file, preferred when running from a checkout.
SOURCE_DEFAULT = Path(__file__).resolve().parents[1] / "config" / "default.toml"


def default_config_path() -> Path:
    """The file ``serve`` uses without ``--config``: the checkout's, else the packaged copy."""
    return SOURCE_DEFAULT if SOURCE_DEFAULT.is_file() else PACKAGED_DEFAULT


def load_config(path: Path, *, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, validate and freeze the configuration file at ``path``.

    ``overrides`` maps dotted keys (``http.host``, ``server.data_dir``) to values that
    replace the file's. Relative paths resolve against the file's directory, except for the
    packaged default, whose relative paths resolve against the working directory.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base_dir = Path.cwd() if path.resolve() == PACKAGED_DEFAULT.resolve() else path.parent
    return config_from_dict(data, base_dir=base_dir, source=str(path), overrides=overrides)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    source: str = "<config>",
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Validate an already parsed TOML document (also used by tests)."""
    merged = _apply_overrides(data, overrides or {})
    return _Reader(source, base_dir.resolve()).config(merged)


def _apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        key: (dict(val) if isinstance(val, Mapping) else val) for key, val in data.items()
    }
    for dotted, value in overrides.items():
        if value is None:
            continue
        table, key = dotted.split(".", 1)
        merged.setdefault(table, {})[key] = value
    return merged


class _Reader:
    """Typed accessors that name the file, table and key in every error."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {problem}")

    def table(self, data: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.fail(f"[{name}]", "must be a table")
        self.check_keys(value, f"[{name}]", keys)
        return value

    def check_keys(self, table: Mapping[str, Any], where: str, keys: set[str]) -> None:
        unknown = sorted(set(table) - keys)
        if unknown:
            raise self.fail(where, f"unknown key '{unknown[0]}' (known: {', '.join(sorted(keys))})")

    def get(self, table: Mapping[str, Any], where: str, key: str, kind: type, default: Any) -> Any:
        value = table.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where} {key}", f"expected {kind.__name__}, got {value!r}")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        kind: type,
        default: Any,
        minimum: float = 0,
        maximum: float = float("inf"),
    ) -> Any:
        value = self.get(table, where, key, kind, default)
        if not minimum <= value <= maximum:
            raise self.fail(f"{where} {key}", f"{value} is outside {minimum}..{maximum}")
        return value

    def u64(self, table: Mapping[str, Any], where: str, key: str) -> int:
        if key not in table:
            raise self.fail(where, f"missing key '{key}'")
        text = str(table[key])
        if not text.isdigit() or not text.isascii() or int(text) > MAX_U64:
            raise self.fail(f"{where} {key}", f"'{text}' is not an unsigned 64-bit number")
        return int(text)

    def path(self, value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a non-empty path string, got {value!r}")
        return (self.base_dir / Path(value).expanduser()).resolve()

    def config(self, data: Mapping[str, Any]) -> Config:
        self.check_keys(
            data, "top level",
            {"server", "http", "auth", "export", "archive", "evidence", "devices", "cluster"}
        )
        server = self.server(
            self.table(data, "server", {"serverid", "name", "data_dir", "export_roots"})
        )
        http = self.http(
            self.table(data, "http", set(HttpConfig.__dataclass_fields__))
        )
        auth = self.auth(self.table(data, "auth", set(AuthConfig.__dataclass_fields__)))
        if not auth.enabled and not is_loopback(http.host):
            raise self.fail(
                "[auth] enabled",
                f"authentication may be disabled only on loopback, "
                f"but [http] host is '{http.host}'",
            )
        archive = self.archive(
            self.table(data, "archive", set(ArchiveConfig.__dataclass_fields__))
        )
        devices = self.devices(data.get("devices", []), server.data_dir)
        added = archive.demo and not devices  # SPEC §12: three demo devices, stable ids
        if added:
            devices = self.devices([dict(d) for d in DEMO_DEVICES], server.data_dir)
        return Config(
            source=self.source,
            server=server,
            http=http,
            auth=auth,
            export=self.export(self.table(data, "export", set(ExportConfig.__dataclass_fields__))),
            archive=archive,
            evidence=self.evidence(self.table(data, "evidence", {"signing_key"})),
            devices=devices,
            cluster=self.cluster(data),
            demo_devices_added=added,
        )

    def server(self, table: Mapping[str, Any]) -> ServerConfig:
        where = "[server]"
        data_dir = self.path(table.get("data_dir", "sense-data"), f"{where} data_dir")
        roots = table.get("export_roots", [str(data_dir / "exports")])
        if not isinstance(roots, list) or not roots:
            raise self.fail(f"{where} export_roots", "expected a non-empty list of paths")
        return ServerConfig(
            server_id=self.u64(table, where, "serverid"),
            name=self.get(table, where, "name", str, "sense_plugin"),
            data_dir=data_dir,
            export_roots=tuple(self.path(r, f"{where} export_roots") for r in roots),
        )

    def http(self, table: Mapping[str, Any]) -> HttpConfig:
        where = "[http]"
        cert, key = table.get("tls_cert"), table.get("tls_key")
        if (cert is None) != (key is None):
            raise self.fail(f"{where} tls_cert/tls_key", "give both or neither")
        return HttpConfig(
            host=self.get(table, where, "host", str, "127.0.0.1"),
            port=self.number(table, where, "port", int, 8080, 0, 65535),
            tls_cert=None if cert is None else self.path(cert, f"{where} tls_cert"),
            tls_key=None if key is None else self.path(key, f"{where} tls_key"),
            max_body_kb=self.number(table, where, "max_body_kb", int, 256, 1, 1 << 20),
            max_connections=self.number(table, where, "max_connections", int, 1000, 8, 1 << 20),
            idle_timeout_s=self.number(table, where, "idle_timeout_s", float, 15.0, 0.1, 86400),
            body_timeout_s=self.number(table, where, "body_timeout_s", float, 30.0, 0.1, 86400),
        )

    def auth(self, table: Mapping[str, Any]) -> AuthConfig:
        where = "[auth]"
        users = table.get("users", [])
        if not isinstance(users, list):
            raise self.fail(f"{where} users", "expected an array of tables [[auth.users]]")
        parsed = tuple(self.user(u, f"[[auth.users]] #{i + 1}") for i, u in enumerate(users))
        names = [u.name for u in parsed]
        if len(set(names)) != len(names):
            raise self.fail(f"{where} users", "user names must be unique")
        enabled = self.get(table, where, "enabled", bool, False)
        if enabled and not parsed:
            raise self.fail(f"{where} enabled", "authentication is enabled but no users are listed")
        return AuthConfig(
            enabled=enabled,
            session_idle_s=self.number(table, where, "session_idle_s", int, 1800, 1),
            users=parsed,
            login_window_s=self.number(table, where, "login_window_s", float, 300.0, 1, 86400),
            max_failures_per_address_user=self.number(
                table, where, "max_failures_per_address_user", int, 10, 1),
            max_failures_per_user=self.number(table, where, "max_failures_per_user", int, 100, 1),
            max_failures_per_address=self.number(
                table, where, "max_failures_per_address", int, 0, 0),
            hash_threads=self.number(table, where, "hash_threads", int, 2, 1, 64),
            max_pending_hashes=self.number(table, where, "max_pending_hashes", int, 8, 1, 10_000),
            max_sessions_per_user=self.number(table, where, "max_sessions_per_user", int, 20, 1),
        )

    def user(self, table: Any, where: str) -> UserConfig:
        if not isinstance(table, Mapping):
            raise self.fail(where, "must be a table")
        self.check_keys(table, where, {"name", "password_hash", "permissions"})
        perms = self.get(table, where, "permissions", list, ["view"])
        bad = [p for p in perms if p not in PERMISSIONS]
        if bad:
            raise self.fail(
                f"{where} permissions",
                f"unknown permission {bad[0]!r} (known: {', '.join(sorted(PERMISSIONS))})",
            )
        password_hash = self.get(table, where, "password_hash", str, "")
        if not password_hash.startswith("scrypt$"):
            raise self.fail(
                f"{where} password_hash",
                "expected a hash from `sense-plugin hash-password` (scrypt$...)",
            )
        return UserConfig(
            name=self.get(table, where, "name", str, ""),
            password_hash=password_hash,
            permissions=frozenset(perms),
        )

    def export(self, table: Mapping[str, Any]) -> ExportConfig:
        w = "[export]"
        return ExportConfig(
            max_concurrent_jobs=self.number(table, w, "max_concurrent_jobs", int, 2, 1, 64),
            max_queued_jobs=self.number(table, w, "max_queued_jobs", int, 1000, 1),
            max_devices_per_export=self.number(table, w, "max_devices_per_export", int, 64, 1),
            max_span_s=self.number(table, w, "max_span_s", int, 86400, 1),
            export_retention_hours=self.number(table, w, "export_retention_hours", float, 24.0),
            history_days=self.number(table, w, "history_days", float, 30.0),
            retention_sweep_s=self.number(table, w, "retention_sweep_s", float, 60.0, 0.01, 86400),
            max_queued_jobs_per_user=self.number(table, w, "max_queued_jobs_per_user", int, 500),
            stall_s=self.number(table, w, "stall_s", float, 60.0, 0.5, 86400),
            download_write_timeout_s=self.number(table, w, "download_write_timeout_s", float,
                                                 30.0, 0.1, 3600),
            max_live_s=self.number(table, w, "max_live_s", int, 3600, 1, 7 * 86400),
            live_keepalive_s=self.number(table, w, "live_keepalive_s", int, 300, 0, 7 * 86400),
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

    def archive(self, table: Mapping[str, Any]) -> ArchiveConfig:
        w = "[archive]"
        return ArchiveConfig(
            demo=self.get(table, w, "demo", bool, True),
            demo_minutes=self.number(table, w, "demo_minutes", float, 10.0, 0.1, 24 * 60),
            demo_keep_hours=self.number(table, w, "demo_keep_hours", float, 24.0, 0.1),
            segment_seconds=self.number(table, w, "segment_seconds", float, 60.0, 1, 3600),
            max_age_days=self.number(table, w, "max_age_days", float, 30.0),
            max_bytes_per_device=self.number(table, w, "max_bytes_per_device", int, 0),
            rescan_s=self.number(table, w, "rescan_s", float, 10.0, 0.05, 3600),
            manage_foreign=self.get(table, w, "manage_foreign", bool, False),
        )

    def cluster(self, data: Mapping[str, Any]) -> ClusterConfig | None:
        """``[cluster]``, or None when the table is absent (a single server)."""
        if "cluster" not in data:
            return None
        w = "[cluster]"
        table = self.table(data, "cluster", set(ClusterConfig.__dataclass_fields__))
        for key in ("database_url", "node_url", "site_secret"):
            if key not in table:
                raise self.fail(w, f"missing key '{key}'")
        url = self.get(table, w, "database_url", str, "")
        if not url.startswith(("postgresql://", "postgres://")):
            raise self.fail(f"{w} database_url",
                            f"expected a postgresql://user:password@host:port/db URL, got {url!r}")
        node_url = self.get(table, w, "node_url", str, "")
        if not re.fullmatch(r"https?://[^/\s]+/?", node_url):
            raise self.fail(f"{w} node_url",
                            f"expected http(s)://host:port (how other servers reach this one), "
                            f"got {node_url!r}")
        secret = self.get(table, w, "site_secret", str, "")
        if len(secret) < 16:
            raise self.fail(f"{w} site_secret", "must be at least 16 characters (e.g. "
                            "`python3 -c 'import secrets; print(secrets.token_hex(32))'`)")
        heartbeat = self.number(table, w, "heartbeat_s", float, 5.0, 0.05, 3600)
        timeout = self.number(table, w, "node_timeout_s", float, 600.0, 0.1, 30 * 86400)
        if timeout < 3 * heartbeat:
            raise self.fail(f"{w} node_timeout_s",
                            f"{timeout:g} is below three heartbeats (3 x {heartbeat:g} s)")
        shared = self.get(table, w, "shared_export_root", bool, False)
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
                                       "archive_pattern", "archive_timezone"})
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
            enabled=self.get(table, where, "enabled", bool, True),
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
        )

    def naming(self, table: Mapping[str, Any], where: str) -> tuple[str, str]:
        """``archive_pattern`` and ``archive_timezone``, checked by compiling them."""
        pattern = self.get(table, where, "archive_pattern", str, DEFAULT_PATTERN)
        zone = self.get(table, where, "archive_timezone", str, DEFAULT_TIMEZONE)
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
