"""The configuration's data model: frozen dataclasses, one per TOML table (SPEC §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DeviceConfig:
    device_id: int
    name: str
    enabled: bool
    archive_dir: Path
    source: str | None = None
    #: How the files under ``archive_dir`` are named (SPEC §12), in ``archive_timezone``.
    archive_pattern: str = "%Y%m%dT%H%M%S.%fZ.{ext}"
    archive_timezone: str = "UTC"
    #: An imported archive (own ``archive_dir`` or pattern, no ``source``): read-only to
    #: retention unless ``[archive] manage_foreign``.
    archive_foreign: bool = False


@dataclass(frozen=True)
class UserConfig:
    name: str
    password_hash: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class ServerConfig:
    server_id: int
    name: str
    data_dir: Path
    export_roots: tuple[Path, ...]


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_kb: int = 256
    #: Open connections at most (also capped below the file-descriptor limit at start).
    max_connections: int = 1000
    #: A connection that sends no complete request for this long is closed (headers, keep-alive).
    idle_timeout_s: float = 15.0
    #: A request body that does not arrive within this time is refused.
    body_timeout_s: float = 30.0


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = False
    session_idle_s: int = 1800
    users: tuple[UserConfig, ...] = ()
    #: Sliding window of the login failure limits below.
    login_window_s: float = 300.0
    #: Failed logins per (address, user name), per user name, per address within the window.
    max_failures_per_address_user: int = 10
    max_failures_per_user: int = 100
    #: 0 = off: behind a reverse proxy or NAT every user shares one address.
    max_failures_per_address: int = 0
    #: Threads that compute scrypt hashes, and hashes running or waiting at most.
    hash_threads: int = 2
    max_pending_hashes: int = 8
    #: Sessions per user; the oldest is revoked past this.
    max_sessions_per_user: int = 20


@dataclass(frozen=True)
class ExportConfig:
    max_concurrent_jobs: int = 2
    max_queued_jobs: int = 1000
    max_devices_per_export: int = 64
    max_span_s: int = 86400
    export_retention_hours: float = 24
    history_days: float = 30
    #: How often the export retention sweep runs (seconds).
    retention_sweep_s: float = 60
    #: Device jobs one user may have waiting (0: no per-user limit), so one user cannot take
    #: the whole queue from the others.
    max_queued_jobs_per_user: int = 500
    #: A running job whose worker reports no progress for this long is stopped and FAILED.
    stall_s: float = 60
    #: A download whose client accepts no data for this long is closed.
    download_write_timeout_s: float = 30
    #: A live export ends at most this long after now (SPEC §10).
    max_live_s: int = 3600
    #: Default keepalive of live exports: stopped when nobody polls or downloads this long.
    live_keepalive_s: int = 300


@dataclass(frozen=True)
class ArchiveConfig:
    demo: bool = True
    demo_minutes: float = 10
    #: Live demo recordings older than this are deleted (they grow by ~1 GB a day a camera).
    demo_keep_hours: float = 24
    segment_seconds: float = 60
    max_age_days: float = 30
    max_bytes_per_device: int = 0
    #: New segments written by other programs are indexed within this many seconds.
    rescan_s: float = 10
    #: Let archive retention delete files of imported (foreign) archives.
    manage_foreign: bool = False


@dataclass(frozen=True)
class EvidenceConfig:
    #: The Ed25519 key that signs every manifest; None: ``<data_dir>/signing-key.pem``,
    #: created on first start.
    signing_key: Path | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """``[cluster]`` (SPEC §13): the servers of one site share one PostgreSQL database."""

    database_url: str
    #: How the other servers of the site reach this one (``http(s)://host:port``).
    node_url: str
    #: Shared by every server; proves server-to-server calls (never sent itself).
    site_secret: str
    heartbeat_s: float = 5.0
    node_timeout_s: float = 600.0
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
    #: True when ``devices`` are the three demo devices added for a config without any.
    demo_devices_added: bool = False

    def device(self, device_id: int) -> DeviceConfig | None:
        """The configured device with this id, or None."""
        for device in self.devices:
            if device.device_id == device_id:
                return device
        return None
