"""A snapshot export's file (worker side): grab the frame, write it safely, describe it.

The image is written under the planned temporary name (exclusive create, no symlinks),
fsynced, hashed from the bytes written, then linked to its final name, which carries the
shown frame's own archive time, and the temporary name removed. A final name that exists
already is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace

from sense_plugin.errors import GeneralError, StorageError
from sense_plugin.filemodel import FileInfo
from sense_plugin.media.messages import TEMP_SUFFIX, CutJob, Written
from sense_plugin.media.pdfreport import ReportFacts, render_report
from sense_plugin.media.sink import STORAGE_ERRNOS
from sense_plugin.media.snapshot import Snapshot, grab, grab_newest
from sense_plugin.outputpaths import output_name
from sense_plugin.safefs import CREATE_FLAGS, FILE_MODE
from sense_plugin.timestamps import format_timestamp


def write_snapshot(job: CutJob) -> Written:
    """Write the snapshot a job asks for (the frame shown at ``job.source.start_us``; live: the
    newest frame, of the segment being recorded if it is readable)."""
    image_fmt = "jpg" if job.fmt == "pdf" else job.fmt  # a PDF report embeds a JPEG frame
    if job.options.live:
        snap = grab_newest(job.source.segments, image_fmt, job.options.render)
    else:
        snap = grab(job.source.segments, job.source.start_us, image_fmt, job.options.render)
    if job.fmt == "pdf":
        snap = pdf_report(snap, job)
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


def pdf_report(snap: Snapshot, job: CutJob) -> Snapshot:
    """The snapshot as a PDF report: the frame with camera, time, comment and export id."""
    render = job.options.render
    stamp = render.timestamp if render is not None else None
    comment = render.comment.text if render is not None and render.comment is not None else ""
    archive_time = (stamp.format(snap.frame_us) if stamp is not None
                    else f"{format_timestamp(snap.frame_us)} UTC")
    facts = ReportFacts(job.title, archive_time, comment, job.export_id,
                        stamp.position if stamp is not None else "top-left")
    data = render_report(snap.data, snap.width, snap.height, facts)
    return replace(snap, data=data, content_type="application/pdf")
