"""Export ids that never go back, and the export directories found on disk.

The store's AUTOINCREMENT is one source of the next id; two more survive losing the store:
a high-water mark file in the data directory (written atomically on every new id) and the
numbered export directories under the export roots. The next id is above all three.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sense_plugin.export.manifest import MANIFEST_NAME

HWM_FILE = "export-ids.hwm"


def read_high_water(data_dir: Path) -> int:
    """The last export id handed out, as recorded beside the store (0 if none/unreadable)."""
    try:
        text = (data_dir / HWM_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return 0
    return int(text) if text.isdigit() else 0


def write_high_water(data_dir: Path, value: int) -> None:
    """Record ``value`` as the last id handed out: temp file, fsync, rename (blocking)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    final = data_dir / HWM_FILE
    temp = data_dir / f".{HWM_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, f"{value}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)


def scan_export_dirs(roots: tuple[Path, ...]) -> dict[int, Path]:
    """Every numbered directory under the export roots (id → path; symlinks not followed).

    Numbered directories are export directories; they are not descended into.
    """
    found: dict[int, Path] = {}
    for root in roots:
        for top, dirs, _files in os.walk(root):
            numbered = [d for d in dirs if d.isdigit() and len(d) < 19]
            for name in numbered:
                path = Path(top) / name
                if int(name) not in found or (path / MANIFEST_NAME).exists():
                    found[int(name)] = path
            dirs[:] = [d for d in dirs if d not in numbered]
    return found


def with_manifest(found: dict[int, Path]) -> dict[int, Path]:
    """The directories of ``found`` that hold a manifest: finished exports."""
    return {i: p for i, p in found.items() if (p / MANIFEST_NAME).is_file()}
