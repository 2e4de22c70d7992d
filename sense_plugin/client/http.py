"""A small synchronous HTTP client of the command API (urllib; Basic auth; XML answers)."""

from __future__ import annotations

import base64
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from lxml import etree

TIMEOUT_S = 30.0
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


class ClientError(Exception):
    """The server answered a negative errorcode, or could not be reached."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{description} (errorcode {code})" if code else description)
        self.code = code
        self.description = description


class UnreachableError(ClientError):
    """No answer from a Sense server: no connection, an HTTP failure, or not XML."""


class SenseClient:
    """Sends ``/command`` requests to ``server`` and returns the parsed ``<result>``."""

    def __init__(self, server: str, user: str | None = None, password: str | None = None) -> None:
        self.server = server.rstrip("/")
        self._headers = {"User-Agent": "sense-plugin-client"}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def _url(self, path: str, params: dict[str, Any]) -> str:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        return f"{self.server}{path}?{query}" if query else f"{self.server}{path}"

    def _open(self, url: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(url, data=body, headers={**self._headers,
                                                                  **(headers or {})})
        if body is not None:
            request.add_header("Content-Type", "text/xml; charset=utf-8")
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - user's URL
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 413, 416):
                raise _error_from(exc.read(), f"HTTP {exc.code}") from None
            raise UnreachableError(0, f"HTTP {exc.code} from {self.server}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UnreachableError(0, f"cannot reach {self.server}: {reason}") from None

    def command(self, name: str, body: bytes | None = None, **params: Any) -> etree._Element:
        """Run a command; raise :class:`ClientError` for a negative errorcode."""
        with self._open(self._url("/command", {"command": name, **params}), body) as response:
            return _checked(response.read())

    def server_time(self) -> str:
        """The server's UTC time (``/info``), wire format."""
        with self._open(self._url("/info", {})) as response:
            return _parse(response.read()).findtext("apiinfo/utc") or ""

    def download(self, export_id: int, name: str, target: Path, sha256: str | None = None) -> int:
        """Fetch one file to ``target`` (via ``target.part``, resumed with Range/If-Range)."""
        part = target.with_name(target.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if have and sha256:
            headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'}
        url = self._url("/command", {"command": "downloadExportVideo", "exportid": export_id,
                                     "file": name})
        with self._open(url, headers=headers) as response:
            if "Content-Disposition" not in response.headers:  # files come as attachments
                _checked(response.read())  # an error document instead of the file
            mode = "ab" if response.status == 206 else "wb"
            with open(part, mode) as handle:
                shutil.copyfileobj(response, handle, 256 * 1024)
        os.replace(part, target)
        return target.stat().st_size


def _parse(data: bytes) -> etree._Element:
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        raise UnreachableError(0, "the server's answer is not XML") from None


def _checked(data: bytes) -> etree._Element:
    root = _parse(data)
    code = int(root.get("errorcode", "0"))
    if code < 0:
        raise ClientError(code, root.findtext("description") or "error")
    return root


def _error_from(data: bytes, fallback: str) -> ClientError:
    try:
        root = _parse(data)
    except ClientError:
        return UnreachableError(0, fallback)
    return ClientError(int(root.get("errorcode", "0")), root.findtext("description") or fallback)
