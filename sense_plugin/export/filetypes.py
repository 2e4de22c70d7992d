"""The MIME type of each file an export holds: status, manifest and download agree."""

from __future__ import annotations

from pathlib import PurePath

MIME_TYPES = {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".ts": "video/mp2t",
              ".jpg": "image/jpeg", ".png": "image/png", ".pdf": "application/pdf",
              ".xml": "text/xml", ".sig": "application/octet-stream",
              ".pem": "application/x-pem-file", ".zip": "application/zip",
              ".txt": "text/plain", ".vtt": "text/vtt", ".srt": "application/x-subrip"}


def mime_type(name: str) -> str:
    """The type of a file by its extension (``application/octet-stream`` when unknown)."""
    return MIME_TYPES.get(PurePath(name).suffix.lower(), "application/octet-stream")
