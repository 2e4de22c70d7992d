"""The configuration's data model: frozen dataclasses, one per TOML table (docs/configuration.rst).

A field's default here is the default of its TOML key (the reader in ``configread`` takes it
from the field); :func:`bounded` adds the range a number must lie in. A number without
``bounded`` must be at least 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sense_plugin import demo_defaults
from sense_plugin.naming import DEFAULT_PATTERN, DEFAULT_TIMEZONE
from sense_plugin.permissions import VIEW

#: Metadata key of a field's ``(minimum, maximum)``.
BOUNDS = "bounds"
#: ``[server] data_dir`` when absent, relative to the configuration file's directory.
DEFAULT_DATA_DIR = "sense-data"


def bounded(default: float, minimum: float = 0, maximum: float = float("inf")) -> Any:
    """A numeric field: ``default``, and the range its TOML key must lie in."""
    return field(default=default, metadata={BOUNDS: (minimum, maximum)})


@dataclass(frozen=True)
class DeviceConfig:
    device_id: int
    name: str
    archive_dir: Path
    enabled: bool = True
    source: str | None = None
    #: How the files under ``archive_dir`` are named (docs/archive.rst), in ``archive_timezone``.
    archive_pattern: str = DEFAULT_PATTERN
    archive_timezone: str = DEFAULT_TIMEZONE
    #: An imported archive (own ``archive_dir`` or pattern, no ``source``): read-only to
    #: retention unless ``[archive] manage_foreign``.
    archive_foreign: bool = False
    #: How an rtsp:// source is asked for: auto (TCP, then UDP, then HTTP tunnelling), tcp,
    #: udp or http (docs/cameras.rst).
    rtsp_transport: str = "auto"
    #: No video for this long while other streams flow: the device is ``stalled``.
    video_stall_s: float = bounded(10.0, 0.5, 3600)


@dataclass(frozen=True)
class UserConfig:
    name: str
    password_hash: str
    permissions: frozenset[str] = frozenset({VIEW})


@dataclass(frozen=True)
class ServerConfig:
    server_id: int
    data_dir: Path
    #: Default ``<data_dir>/exports``; the first is the default root.
    export_roots: tuple[Path, ...]
    name: str = "sense_plugin"


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = bounded(8080, 0, 65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_kb: int = bounded(256, 1, 1 << 20)
    #: Open connections at most (also capped below the file-descriptor limit at start).
    max_connections: int = bounded(1000, 8, 1 << 20)
    #: A connection that sends no complete request for this long is closed (headers, keep-alive).
    idle_timeout_s: float = bounded(15.0, 0.1, 86400)
    #: A request body that does not arrive within this time is refused.
    body_timeout_s: float = bounded(30.0, 0.1, 86400)
    #: Host names (or origins, ``https://name[:port]``) this server answers to besides
    #: ``host``, ``localhost`` and the loopback addresses (DNS rebinding defence).
    allowed_hosts: tuple[str, ...] = ()
    #: getSnapshot decodes on its own threads; snapshots running or waiting at most, in all
    #: and per user (more: -1006, HTTP 503).
    snapshot_threads: int = bounded(2, 1, 64)
    max_pending_snapshots: int = bounded(8, 1, 10_000)
    max_snapshots_per_user: int = bounded(2, 1, 10_000)


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = False
    session_idle_s: int = bounded(1800, 1)
    users: tuple[UserConfig, ...] = ()
    #: Sliding window of the login failure limits below.
    login_window_s: float = bounded(300.0, 1, 86400)
    #: Failed logins per (address, user name), per user name, per address within the window.
    max_failures_per_address_user: int = bounded(10, 1)
    max_failures_per_user: int = bounded(100, 1)
    #: 0 = off: behind a reverse proxy or NAT every user shares one address.
    max_failures_per_address: int = 0
    #: Threads that compute scrypt hashes, and hashes running or waiting at most.
    hash_threads: int = bounded(2, 1, 64)
    max_pending_hashes: int = bounded(8, 1, 10_000)
    #: Sessions per user; the oldest is revoked past this.
    max_sessions_per_user: int = bounded(20, 1)
    #: Failure counters kept at most; a counter that still holds failures is never dropped
    #: to make room (a full table refuses new names instead, -1006).
    max_login_keys: int = bounded(100_000, 16, 10_000_000)
    #: User names one client address may have failures counted for at once.
    max_names_per_address: int = bounded(100, 1, 1_000_000)


@dataclass(frozen=True)
class ExportConfig:
    max_concurrent_jobs: int = bounded(2, 1, 64)
    max_queued_jobs: int = bounded(1000, 1)
    max_devices_per_export: int = bounded(64, 1)
    max_span_s: int = bounded(86400, 1)
    export_retention_hours: float = 24.0
    history_days: float = 30.0
    #: How often the export retention sweep runs (seconds).
    retention_sweep_s: float = bounded(60.0, 0.01, 86400)
    #: Device jobs one user may have waiting (0: no per-user limit), so one user cannot take
    #: the whole queue from the others.
    max_queued_jobs_per_user: int = 500
    #: A running job whose worker reports no progress for this long is stopped and FAILED.
    stall_s: float = bounded(60.0, 0.5, 86400)
    #: A download whose client accepts no data for this long is closed.
    download_write_timeout_s: float = bounded(30.0, 0.1, 3600)
    #: A live export ends at most this long after now (docs/exports.rst).
    max_live_s: int = bounded(3600, 1, 7 * 86400)
    #: Default keepalive of live exports: stopped when nobody polls or downloads this long.
    live_keepalive_s: int = bounded(300, 0, 7 * 86400)
    #: Hosts an export's own ``<callback>`` URL may name (none: per-export callbacks refused).
    callback_hosts: tuple[str, ...] = ()
    #: Signs per-export callbacks (X-Sense-Signature), as ``secret`` does a webhook's.
    callback_secret: str = ""
    #: Workers one user may hold at once with authentication on (0: all but one); past it a
    #: user's job borrows an idle worker only when nobody else waits (docs/scheduling.rst).
    max_running_jobs_per_user: int = 0
    #: Unfinished live device jobs one user may have with authentication on (0: no limit).
    max_live_jobs_per_user: int = 4
    #: Cost of a rendered second of footage, a stream-copied second costing 1 (fair shares).
    render_cost_weight: float = bounded(100.0, 1, 10_000)
    #: Least ``<bandwidth>`` an export may ask for, per device (kbit/s; 0 = unlimited).
    min_bandwidth_kbps: int = bounded(16, 1, 1_000_000)


@dataclass(frozen=True)
class ArchiveConfig:
    demo: bool = True
    demo_minutes: float = bounded(demo_defaults.MINUTES, 0.1, 24 * 60)
    #: Live demo recordings older than this are deleted (they grow by ~1 GB a day a camera).
    demo_keep_hours: float = bounded(24.0, 0.1)
    segment_seconds: float = bounded(60.0, 1, 3600)
    max_age_days: float = 30.0
    max_bytes_per_device: int = 0
    #: New segments written by other programs are indexed within this many seconds.
    rescan_s: float = bounded(10.0, 0.05, 3600)
    #: Let archive retention delete files of imported (foreign) archives.
    manage_foreign: bool = False


@dataclass(frozen=True)
class EvidenceConfig:
    #: The Ed25519 key that signs every manifest; None: ``<data_dir>/signing-key.pem``,
    #: created on first start.
    signing_key: Path | None = None


#: The events a webhook may ask for (docs/custody.rst).
WEBHOOK_EVENTS = frozenset({"completed", "failed", "removed", "expired", "held"})


@dataclass(frozen=True)
class WebhookConfig:
    """``[[webhooks]]``: where export events are POSTed, signed with ``secret``."""

    url: str
    secret: str
    events: frozenset[str] = WEBHOOK_EVENTS


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]`` (docs/site.rst): the servers of one site share one PostgreSQL database."""

    database_url: str
    #: How the other servers of the site reach this one (``http(s)://host:port``).
    node_url: str
    #: Shared by every server; proves server-to-server calls (never sent itself).
    site_secret: str
    heartbeat_s: float = bounded(5.0, 0.05, 3600)
    node_timeout_s: float = bounded(600.0, 0.1, 30 * 86400)
    #: Every server sees every export root at the same path (one shared file system): a
    #: file held by another server is read from disk here instead of relayed from it.
    shared_export_root: bool = False


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    source: str
    server: ServerConfig
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    devices: tuple[DeviceConfig, ...] = ()
    #: None: a single server on SQLite (no PostgreSQL).
    cluster: ClusterConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    #: True when ``devices`` are the three demo devices added for a config without any.
    demo_devices_added: bool = False

    def device(self, device_id: int) -> DeviceConfig | None:
        """The configured device with this id, or None."""
        for device in self.devices:
            if device.device_id == device_id:
                return device
        return None
