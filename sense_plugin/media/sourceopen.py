"""Opening a cut's source segments: fully probed, or from the container header alone.

``av.open`` runs FFmpeg's stream probing, which for an MP4 segment decodes the first video
frame (and an audio frame) only to learn the pixel format, field order and chroma siting. A cut
takes those from the first segment it reads: its output streams are copies of that segment's
streams. The segments after it only give packets, their timing (time base, start, frame rate,
all in the MP4 header) and the codec name and size compared with the first. Those are opened
without the decode (``docs/performance.rst``, "Opening the sources"); anything they lack is
opened again, fully probed.
"""

from __future__ import annotations

import av

#: Read no more than the header to describe the streams, and decode nothing to do so.
_HEADER_ONLY = {"probesize": "32", "analyzeduration": "0"}
_NO_DECODE = {"skip_frame": "all"}
#: Containers whose header describes every stream (the archive's own segments).
_HEADER_SUFFIXES = (".mp4", ".m4v", ".mov")
_HEADER_FORMATS = frozenset({"mov", "mp4"})


def open_source(path: str, *, header_only: bool) -> av.container.InputContainer:
    """The segment at ``path``, opened from its header alone where that describes it fully
    (``header_only`` and an MP4 whose video stream has its size and frame rate), else probed."""
    if header_only and path.lower().endswith(_HEADER_SUFFIXES):
        # one dict per stream (PyAV's stub for open() says list[str]; its attribute is right)
        source = av.open(path, options=_HEADER_ONLY,
                         stream_options=[_NO_DECODE] * 8)  # type: ignore[list-item]
        if _described(source):
            return source
        source.close()
    return av.open(path)


def _described(source: av.container.InputContainer) -> bool:
    """True when the header gave what a later segment of a cut is read for."""
    if not _HEADER_FORMATS.intersection(source.format.name.split(",")):
        return False
    if not source.streams.video:
        return False
    video = source.streams.video[0]
    context = video.codec_context
    return bool(video.average_rate and video.time_base and context.width and context.height
                and context.extradata)
