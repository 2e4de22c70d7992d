"""List a device folder's video files as the reconcile needs them: relative name, size, mtime.

Walks sub-folders as deep as the naming pattern goes; hidden files and folders are skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from stat import S_ISREG

from sense_plugin.naming import READ_EXTENSIONS

log = logging.getLogger(__name__)

#: A listed file: relative path (``/`` separated), size, mtime.
Listed = tuple[str, int, int]
_VIDEO_SUFFIXES = tuple("." + ext for ext in READ_EXTENSIONS)


def list_files(directory: Path, depth: int,
                known: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Listed]:
    """Video files (by extension, any case) down to ``depth`` folder levels; hidden skipped.

    Files in ``known`` are taken as unchanged without a ``stat``.
    """
    found: dict[str, Listed] = {}
    stack: list[tuple[str, str, int]] = [(str(directory), "", 0)]
    while stack:
        folder, prefix, level = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            log.warning("cannot list archive folder %s: %s", folder, exc.strerror)
            continue
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            try:
                if level < depth and entry.is_dir():
                    stack.append((entry.path, f"{prefix}{name}/", level + 1))
                    continue
                if not name.lower().endswith(_VIDEO_SUFFIXES) or not entry.is_file():
                    continue
                if known is not None and (same := known.get(entry.path)) is not None:
                    found[entry.path] = (prefix + name, *same)
                    continue
                stat = entry.stat()
            except OSError:
                continue  # vanished between listing and stat
            found[entry.path] = (prefix + name, stat.st_size, stat.st_mtime_ns)
    return found


def stat_files(directory: Path, depth: int, paths: Collection[Path]) -> dict[str, Listed]:
    """Like :func:`list_files`, for the given paths only (those gone are left out)."""
    found: dict[str, Listed] = {}
    for path in paths:
        try:
            parts = path.relative_to(directory).parts
        except ValueError:
            continue
        if (len(parts) - 1 > depth or any(part.startswith(".") for part in parts)
                or not path.name.lower().endswith(_VIDEO_SUFFIXES)):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if S_ISREG(stat.st_mode):
            found[str(path)] = ("/".join(parts), stat.st_size, stat.st_mtime_ns)
    return found
