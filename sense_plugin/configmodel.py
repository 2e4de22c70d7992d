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


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = False
    session_idle_s: int = 1800
    users: tuple[UserConfig, ...] = ()


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


@dataclass(frozen=True)
class ArchiveConfig:
    demo: bool = True
    demo_minutes: float = 10
    segment_seconds: float = 60
    max_age_days: float = 30
    max_bytes_per_device: int = 0


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    source: str
    server: ServerConfig
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    devices: tuple[DeviceConfig, ...] = ()

    def device(self, device_id: int) -> DeviceConfig | None:
        """The configured device with this id, or None."""
        for device in self.devices:
            if device.device_id == device_id:
                return device
        return None
