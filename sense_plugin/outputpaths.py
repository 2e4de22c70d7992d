"""Where export files go: ``path`` confined to the export roots, and file naming
(docs/exports.rst)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from sense_plugin.errors import PathNotAllowedError
from sense_plugin.filemodel import FORMATS
from sense_plugin.timestamps import format_compact

#: A file being written is named ``<final name>.part`` until it is complete.
TEMP_SUFFIX = ".part"

MAX_PATH_CHARS = 1024
MAX_COMPONENT_BYTES = 255
#: Exports created without a ``path`` go to ``<default root>/unnamed/<exportid>``, so numbered
#: export directories never sit beside the folders users name.
UNNAMED_FOLDER = "unnamed"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resolve_export_dir(path: str, roots: tuple[Path, ...]) -> Path:
    """The directory that will hold ``<exportid>/`` for a client ``path``.

    Relative paths live under the first (default) root, an empty one in its ``unnamed``
    folder; absolute ones must lie inside one of the roots. ``..`` components, control
    characters, over-long names and symlinks that lead outside every root are refused with
    -1004.
    """
    _check_text(path)
    pure = PurePosixPath(path)
    if ".." in pure.parts:
        raise PathNotAllowedError(f"path '{_show(path)}' must not contain '..'")
    candidate = Path(path) if pure.is_absolute() else roots[0] / (path or UNNAMED_FOLDER)
    real = Path(os.path.realpath(candidate))
    allowed = roots if pure.is_absolute() else roots[:1]
    for root in allowed:
        if real.is_relative_to(os.path.realpath(root)):
            return real
    raise PathNotAllowedError(f"path '{_show(path)}' resolves outside the configured export roots")


def output_name(device_name: str, device_id: int, start_us: int, fmt: str) -> str:
    """``<device name>_<deviceid>_<UTC start>.<ext>`` with the name made filesystem-safe."""
    return f"{device_prefix(device_name, device_id)}{format_compact(start_us)}{FORMATS[fmt]}"


def part_name(device_name: str, device_id: int, start_us: int, fmt: str, number: int) -> str:
    """``<device name>_<deviceid>_<UTC start>_partNNN.<ext>``: file ``number`` (from 1) of a
    device's output split by size or by a change of parameters."""
    stem, ext = os.path.splitext(output_name(device_name, device_id, start_us, fmt))
    return f"{stem}_part{number:03d}{ext}"


def part_temporary(planned_path: str, number: int) -> str:
    """``<planned>.pNNN.part``: where file ``number`` of a split or per-run cut is written
    until every file of the cut is done and named. A killed worker leaves only names that
    start ``<planned>.p`` and end ``.part``, which the export's clean-up deletes."""
    return f"{planned_path}.p{number:03d}{TEMP_SUFFIX}"


def is_part_temporary(name: str, planned: str) -> bool:
    """A name :func:`part_temporary` (or a cut or split writing under it) gives ``planned``."""
    return name.startswith(planned + ".p") and name.endswith(TEMP_SUFFIX)


def device_prefix(device_name: str, device_id: int) -> str:
    """``<device name>_<deviceid>_``: how every file a device writes into an export begins
    (its outputs, parts and their temporary files)."""
    safe = _UNSAFE.sub("_", device_name).strip("._")[:64] or "device"
    return f"{safe}_{device_id}_"


def _check_text(path: str) -> None:
    if len(path) > MAX_PATH_CHARS:
        raise PathNotAllowedError(f"path is longer than {MAX_PATH_CHARS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise PathNotAllowedError("path must not contain control characters or NUL bytes")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES
           for part in path.split("/")):
        raise PathNotAllowedError(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")


def _show(path: str) -> str:
    return path if len(path) <= 80 else path[:80] + "..."
