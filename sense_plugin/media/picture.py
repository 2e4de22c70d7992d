"""The recorded picture size of a segment, from its header only (no packet is read)."""

from __future__ import annotations

import av

from sense_plugin.errors import MediaError


def picture_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` of the first video stream, or None when the file has none.

    Blocking (a file open and header parse, a few ms). Raises :class:`MediaError` for a file
    that cannot be opened.
    """
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return None
            ctx = container.streams.video[0].codec_context
            return (ctx.width, ctx.height) if ctx.width and ctx.height else None
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot read {path}: {exc}") from None
