"""The per-frame picture work of a rendered export or snapshot: masks, crop, scale, text.

Masks are placed in source coordinates (they describe the scene), then the picture is
cropped and scaled, then the text is drawn on the output picture (its size is relative to
what the viewer sees).
"""

from __future__ import annotations

from typing import cast

import av
import numpy as np

from sense_plugin.errors import OutOfRangeError
from sense_plugin.media.overlay import (
    Plane,
    TextPainter,
    apply_mask,
    join_planes,
    split_planes,
)
from sense_plugin.media.renderoptions import MIN_WIDTH, RenderOptions, check_picture


def output_size(options: RenderOptions, width: int, height: int) -> tuple[int, int]:
    """The picture size after crop and scale for a ``width``×``height`` source (even);
    -22 for what cannot be rendered (:func:`check_picture`)."""
    source = width, height
    size = _scaled_size(options, width, height)
    check_picture(options, source, size)
    return size


def _scaled_size(options: RenderOptions, width: int, height: int) -> tuple[int, int]:
    width, height = width // 2 * 2, height // 2 * 2
    if options.crop is not None:
        _, _, width, height = options.crop.pixels(width, height)
    if options.width is not None:
        if not MIN_WIDTH <= options.width <= width:
            raise OutOfRangeError(
                f"render/width {options.width} is outside {MIN_WIDTH}..{width} "
                "(the width of the recorded, cropped picture)")
        height = max(2, round(height * options.width / width / 2) * 2)
        width = options.width // 2 * 2
    return width, height


class FrameFilter:
    """Applies ``options`` to frames of one source size; text glyphs are cached across frames."""

    def __init__(self, options: RenderOptions, width: int, height: int) -> None:
        self.options = options
        self.size = output_size(options, width, height)
        out_w, out_h = self.size
        self.timestamp = (TextPainter(options.timestamp, out_w, out_h)
                          if options.timestamp is not None else None)
        self.comment = (TextPainter(options.comment, out_w, out_h)
                        if options.comment is not None and options.comment.text else None)

    def apply(self, frame: av.VideoFrame, archive_us: int) -> av.VideoFrame:
        """A new yuv420p frame of :attr:`size` (the decoded frame is never written to)."""
        opts = self.options
        width, height = frame.width // 2 * 2, frame.height // 2 * 2
        data = cast(Plane, frame.to_ndarray(format="yuv420p", width=width, height=height))
        planes = split_planes(data, width, height)
        for mask in opts.masks:
            apply_mask(planes, mask, width, height)
        if opts.crop is not None:
            x0, y0, w, h = opts.crop.pixels(width, height)
            data = join_planes(planes.y[y0:y0 + h, x0:x0 + w],
                               planes.u[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2],
                               planes.v[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2])
            width, height = w, h
        if (width, height) != self.size:
            scaled = av.VideoFrame.from_ndarray(data, format="yuv420p").reformat(
                width=self.size[0], height=self.size[1], interpolation="AREA")
            width, height = self.size
            data = cast(Plane, scaled.to_ndarray(format="yuv420p"))
        if self.timestamp is not None or self.comment is not None:
            data = np.ascontiguousarray(data)
            planes = split_planes(data, width, height)
            if self.timestamp is not None and opts.timestamp is not None:
                self.timestamp.paint(planes, opts.timestamp.format(archive_us))
            if self.comment is not None and opts.comment is not None:
                self.comment.paint(planes, opts.comment.text)
        return av.VideoFrame.from_ndarray(data, format="yuv420p")
