"""A snapshot export's file (worker side): grab the frame, write it safely, describe it.

The image is written under the planned temporary name (exclusive create, no symlinks),
fsynced, hashed from the bytes written, then linked to its final name, which carries the
shown frame's own archive time, and the temporary name removed. A final name that exists
already is never overwritten.
"""

from __future__ import annotations

import hashlib
import os

from sense_plugin.errors import GeneralError, StorageError
from sense_plugin.export.model import FileInfo
from sense_plugin.export.paths import output_name
from sense_plugin.export.safefs import CREATE_FLAGS, FILE_MODE
from sense_plugin.media.messages import TEMP_SUFFIX, CutJob, Written
from sense_plugin.media.sink import STORAGE_ERRNOS
from sense_plugin.media.snapshot import grab, grab_newest


def write_snapshot(job: CutJob) -> Written:
    """Write the snapshot a job asks for (the frame shown at ``job.start_us``; live: the
    newest frame, of the segment being recorded if it is readable)."""
    if job.options.live:
        snap = grab_newest(job.segments, job.fmt, job.options.render)
    else:
        snap = grab(job.segments, job.start_us, job.fmt, job.options.render)
    directory = os.path.dirname(job.out_path)
    name = output_name(job.title, job.device_id, snap.frame_us, job.fmt)
    tmp = job.out_path + TEMP_SUFFIX
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
    info = FileInfo(name=name, size_bytes=len(snap.data),
                    sha256=hashlib.sha256(snap.data).hexdigest(), first_frame_us=snap.frame_us,
                    last_frame_us=snap.frame_us, frame_count=1)
    return Written(info, st.st_dev, st.st_ino)
