"""Fast archive mode: extend a device's encoded span backwards with stream copies of it.

Each copy of segment ``[s, e)`` is written as ``[s - k*U, e - k*U)`` where ``U`` is the encoded
span: a PyAV stream copy (no re-encoding) with the file name *and* the ``creation_time`` tag
rewritten for the new start, then probed and indexed exactly like a recorded segment, so the
index, the file names and the container metadata all agree. Only the burned-in clock of a copy
shows the original time (the pixels are copied as they are).
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.archive.probe import probe_segment
from sense_plugin.naming import segment_filename
from sense_plugin.timestamps import creation_time_text


def copy_segment(src: Path, dst: Path, start_us: int) -> None:
    """Stream-copy ``src`` to ``dst`` with ``creation_time`` = ``start_us`` (atomic rename)."""
    tmp = dst.with_name(f".{dst.name}.part")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4",
                                           options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["creation_time"] = creation_time_text(start_us)
        if "title" in inp.metadata:
            out.metadata["title"] = inp.metadata["title"]
        streams = {s.index: out.add_stream_from_template(s)
                   for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[s for s in inp.streams if s.index in streams]):
            if packet.size == 0:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    os.replace(tmp, dst)


def tile_device(data_dir: Path, device_id: int, total_us: int) -> int:
    """Add earlier copies until the device's archive spans ``total_us``; returns copies added."""
    index = ArchiveIndex(data_dir / "archive.sqlite3")
    try:
        originals = index.segments(device_id, 0, 2**62)
        if not originals:
            raise RuntimeError(f"device {device_id} has no segments to tile")
        first_us, last_us = originals[0].start_us, originals[-1].end_us
        span_us = last_us - first_us
        wanted_first_us = last_us - total_us
        added = 0
        shift = 1
        while first_us - (shift - 1) * span_us > wanted_first_us:
            batch = []
            for seg in originals:
                start_us = seg.start_us - shift * span_us
                if seg.end_us - shift * span_us <= wanted_first_us:
                    continue
                dst = seg.path.with_name(segment_filename(start_us, "mp4"))
                copy_segment(seg.path, dst, start_us)
                info = probe_segment(dst)
                batch.append((Segment(device_id, info.start_us, info.end_us, dst,
                                      info.size_bytes), dst.stat().st_mtime_ns))
            index.add_many(batch)
            added += len(batch)
            shift += 1
        return added
    finally:
        index.close()
