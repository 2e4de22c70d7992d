"""A snapshot export's file (worker side): grab the frame, write it safely, describe it.

The image is written under the planned temporary name (exclusive create, no symlinks),
fsynced, hashed from the bytes written, then linked to its final name, which carries the
shown frame's own archive time, and the temporary name removed. A final name that exists
already is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from sense_plugin.errors import GeneralError, StorageError
from sense_plugin.export.options import ExportOptions
from sense_plugin.export.paths import output_name
from sense_plugin.export.safefs import CREATE_FLAGS, FILE_MODE
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.sink import STORAGE_ERRNOS
from sense_plugin.media.snapshot import grab, grab_newest

TEMP_SUFFIX = ".part"


def write_snapshot(payload: dict[str, Any], options: ExportOptions) -> dict[str, Any]:
    """Write the snapshot a job payload asks for; the result dict the runner expects."""
    segments = tuple(SourceSegment(**s) for s in payload["segments"])
    if options.live:  # the newest frame: of the segment being recorded, if readable
        snap = grab_newest(segments, payload["fmt"], options.render)
    else:
        snap = grab(segments, payload["start_us"], payload["fmt"], options.render)
    out_path: str = payload["out_path"]
    directory = os.path.dirname(out_path)
    name = output_name(payload["title"], payload["device_id"], snap.frame_us, payload["fmt"])
    tmp = out_path + TEMP_SUFFIX
    final = os.path.join(directory, name)
    try:
        fd = os.open(tmp, CREATE_FLAGS, FILE_MODE)
        try:
            view = memoryview(snap.data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final, follow_symlinks=False)
        except FileExistsError:
            raise GeneralError(f"'{name}' exists already in the export directory (another "
                               "device of this export shows the same frame)") from None
        finally:
            os.unlink(tmp)
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise StorageError(f"export storage is full: {os.strerror(exc.errno or 0)}") \
                from None
        raise
    return {"name": name, "first_frame_us": snap.frame_us, "last_frame_us": snap.frame_us,
            "frame_count": 1, "audio_packets": 0, "gaps": [], "size_bytes": len(snap.data),
            "sha256": hashlib.sha256(snap.data).hexdigest(), "file_dev": st.st_dev,
            "file_ino": st.st_ino, "width": snap.width, "height": snap.height}
