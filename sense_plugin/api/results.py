"""Small typed result objects that command handlers return and ``render`` turns into XML."""

from __future__ import annotations

from dataclasses import dataclass

from sense_plugin.export.model import Export, Status


@dataclass(frozen=True)
class ApiInfo:
    utc_us: int
    version: str


@dataclass(frozen=True)
class SessionKey:
    key: str


@dataclass(frozen=True)
class DeviceRow:
    name: str
    server_id: int
    device_id: int
    status: str
    type: str = "camera"


@dataclass(frozen=True)
class DeviceList:
    devices: tuple[DeviceRow, ...]


@dataclass(frozen=True)
class ServerRow:
    server_id: int
    name: str
    type: str = "sense_plugin"
    #: ``online``/``offline`` on a site of several servers (docs/site.rst); None: single server.
    status: str | None = None


@dataclass(frozen=True)
class DivaList:
    servers: tuple[ServerRow, ...]


@dataclass(frozen=True)
class ServerOptions:
    server_id: int
    description: str
    title: str
    version: str
    camera_count: int
    #: export.max_span_s: the longest range one device of an export may span (ext).
    max_span_s: int
    #: The manifest signing key: PEM public key and SHA-256 of its DER form (docs/rendering.rst).
    signing_key_pem: str = ""
    signing_key_fingerprint: str = ""


@dataclass(frozen=True)
class DeviceRecordedRange:
    device_id: int
    name: str
    first_us: int | None
    last_us: int | None


@dataclass(frozen=True)
class ServerStatus:
    server_id: int
    devices: tuple[DeviceRecordedRange, ...]


@dataclass(frozen=True)
class Recordings:
    server_id: int
    device_id: int
    start_us: int
    end_us: int
    intervals: tuple[tuple[int, int], ...]
    #: Archive ranges held exports were cut from (their intervals show ``<held>``).
    held: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ExportCreated:
    export_id: int


@dataclass(frozen=True)
class ExportChanged:
    export_id: int
    status: Status


@dataclass(frozen=True)
class ExportStatusList:
    exports: tuple[Export, ...]
    total: int | None = None  # every matching export, on paged answers (docs/protocol.rst)
