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


def scan_export_dirs(roots: tuple[Path, ...]) -> tuple[dict[int, Path], set[int]]:
    """Every export directory under the export roots (symlinks not followed): id → path, and
    the ids whose directory holds a manifest (finished exports).

    An export directory is a numbered directory without subdirectories (it holds files
    only), so a user's numbered folder such as ``cases/2026/4711`` counts only at its leaf.
    """
    found: dict[int, Path] = {}
    finished: set[int] = set()
    for root in roots:
        for top, dirs, files in os.walk(root):
            name = os.path.basename(top)
            if dirs or not name.isdigit() or len(name) >= 19:
                continue
            export_id = int(name)
            if export_id in finished:
                continue
            found[export_id] = Path(top)
            if MANIFEST_NAME in files:
                finished.add(export_id)
    return found, finished
