"""The result-code table of docs/protocol.rst and the typed errors that carry those codes.

This module imports nothing from the package: every layer raises these errors and the
API's single middleware renders them.
"""

from __future__ import annotations

import logging
import uuid
from enum import IntEnum


class ResultCode(IntEnum):
    """Result codes of the wire protocol (``<result errorcode="N">``)."""

    OK = 0
    NOT_IMPLEMENTED = -1
    NO_DEVICE = -2
    INVALID_TIMESTAMP = -4
    NO_RECORD = -9
    NOT_ENOUGH_PARAMETERS = -10
    NO_SERVER = -17
    GENERAL_ERROR = -18
    DEVICE_NOT_ACTIVE = -21
    OUT_OF_RANGE = -22
    EMPTY_VALUE = -23
    INVALID_EXPORT_ID = -57
    AUTH_REQUIRED = -1001
    PERMISSION_DENIED = -1002
    INVALID_XML = -1003
    PATH_NOT_ALLOWED = -1004
    QUEUE_FULL = -1005
    NOT_AVAILABLE = -1006
    STORAGE_ERROR = -1007
    SERVER_OFFLINE = -1008


#: Human-readable names, used as the default description.
RESULT_NAMES: dict[ResultCode, str] = {
    ResultCode.OK: "Ok",
    ResultCode.NOT_IMPLEMENTED: "Not implemented",
    ResultCode.NO_DEVICE: "No device",
    ResultCode.INVALID_TIMESTAMP: "Invalid timestamp",
    ResultCode.NO_RECORD: "No record",
    ResultCode.NOT_ENOUGH_PARAMETERS: "Not enough parameters",
    ResultCode.NO_SERVER: "No server",
    ResultCode.GENERAL_ERROR: "General error",
    ResultCode.DEVICE_NOT_ACTIVE: "Device not active",
    ResultCode.OUT_OF_RANGE: "Value is out of range",
    ResultCode.EMPTY_VALUE: "An empty value is not allowed",
    ResultCode.INVALID_EXPORT_ID: "Invalid exportid",
    ResultCode.AUTH_REQUIRED: "Authentication required",
    ResultCode.PERMISSION_DENIED: "Permission denied",
    ResultCode.INVALID_XML: "Invalid XML",
    ResultCode.PATH_NOT_ALLOWED: "Path not allowed",
    ResultCode.QUEUE_FULL: "Export queue full",
    ResultCode.NOT_AVAILABLE: "Not available",
    ResultCode.STORAGE_ERROR: "Storage error",
    ResultCode.SERVER_OFFLINE: "Server offline",
}


def quote_input(text: str, limit: int = 64) -> str:
    """Client input made safe to echo in a description: printable and at most ``limit`` chars."""
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[:limit] + "..."


class SenseError(Exception):
    """An error with a protocol result code and a client-safe description."""

    code: ResultCode = ResultCode.GENERAL_ERROR
    #: HTTP status used when the error is rendered (legacy clients read only the body).
    http_status: int = 200

    def __init__(self, description: str | None = None) -> None:
        self.description = description or RESULT_NAMES[self.code]
        #: Set when the failure was logged under an incident id (:func:`incident_error`).
        self.incident: str | None = None
        super().__init__(self.description)


class NotImplementedCommandError(SenseError):
    code = ResultCode.NOT_IMPLEMENTED


class NoDeviceError(SenseError):
    code = ResultCode.NO_DEVICE


class InvalidTimestampError(SenseError):
    code = ResultCode.INVALID_TIMESTAMP


class NoRecordError(SenseError):
    code = ResultCode.NO_RECORD


class MissingParameterError(SenseError):
    code = ResultCode.NOT_ENOUGH_PARAMETERS


class NoServerError(SenseError):
    code = ResultCode.NO_SERVER


class GeneralError(SenseError):
    code = ResultCode.GENERAL_ERROR


class DeviceNotActiveError(SenseError):
    code = ResultCode.DEVICE_NOT_ACTIVE


class OutOfRangeError(SenseError):
    code = ResultCode.OUT_OF_RANGE


class EmptyValueError(SenseError):
    code = ResultCode.EMPTY_VALUE


class InvalidExportIdError(SenseError):
    code = ResultCode.INVALID_EXPORT_ID


class AuthRequiredError(SenseError):
    code = ResultCode.AUTH_REQUIRED
    http_status = 401


class PermissionDeniedError(SenseError):
    code = ResultCode.PERMISSION_DENIED


class InvalidXmlError(SenseError):
    code = ResultCode.INVALID_XML


class PathNotAllowedError(SenseError):
    code = ResultCode.PATH_NOT_ALLOWED


class QueueFullError(SenseError):
    code = ResultCode.QUEUE_FULL


class NotAvailableError(SenseError):
    code = ResultCode.NOT_AVAILABLE


class StorageError(SenseError):
    code = ResultCode.STORAGE_ERROR


class ServerOfflineError(SenseError):
    """The server holding a device or file has been unreachable past ``node_timeout_s``."""

    code = ResultCode.SERVER_OFFLINE


class BodyTooLargeError(SenseError):
    """The request body exceeds ``http.max_body_kb`` (HTTP 413)."""

    code = ResultCode.OUT_OF_RANGE
    http_status = 413


class MediaError(Exception):
    """A media file could not be read or written (raised by PyAV-facing code)."""


class ParametersChangedError(MediaError):
    """The video codec or picture size changes inside the range of one output file."""


class ConfigError(Exception):
    """The configuration file is invalid; the message names file, key and problem."""


def error_for_code(code: int, description: str) -> SenseError:
    """Rebuild a typed error from its code (e.g. one reported by a worker process)."""
    for cls in _all_subclasses(SenseError):
        if int(cls.code) == code and cls.http_status == 200:
            return cls(description)
    return GeneralError(description)


def _all_subclasses(cls: type[SenseError]) -> list[type[SenseError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def new_incident() -> str:
    """A short id that ties a client-visible description to a server log entry."""
    return uuid.uuid4().hex[:12]


def incident_error(logger: logging.Logger, context: str, description: str, *,
                   traceback: bool = True,
                   kind: type[SenseError] = GeneralError) -> SenseError:
    """Log the failure being handled under a new incident id; the error that names it.

    ``context`` goes to the log only (it may name files and internals); ``description`` is
    what the client reads, followed by "; reported as incident <id>". The error is a
    ``kind`` (default :class:`GeneralError`, -18).
    """
    incident = new_incident()
    logger.error("incident %s: %s", incident, context, exc_info=traceback)
    error = kind(f"{description}; reported as incident {incident}")
    error.incident = incident
    return error
