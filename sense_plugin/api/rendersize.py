"""Admission check of ``<render>`` against the recorded picture.

What cannot be rendered is refused before anything is queued, not by an incident later: a
width larger than the (cropped) source, a crop or mask edge under 2 px of the recorded
picture, an output smaller than the codec encodes (libx265: 16x16). Where the archive already
holds the device's recording for the range, the size of its first segment there is read
(header only, off the event loop) and such a request is -22 naming the element. Where nothing
is recorded yet (a live export starting now) the same check runs when the job starts and
fails it with the same -22 (:func:`sense_plugin.media.filters.output_size`).
See docs/security.rst, "Render admission".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sense_plugin.archive.service import Archive
from sense_plugin.errors import MediaError, OutOfRangeError
from sense_plugin.export.model import ExportRequest
from sense_plugin.media.filters import output_size
from sense_plugin.media.picture import picture_size

RunIo = Callable[..., Awaitable[Any]]


async def check_render_width(request: ExportRequest, archive: Archive, run_io: RunIo) -> None:
    """-22 naming the device and the element when a known source cannot be rendered so."""
    for index, device in enumerate(request.devices):
        render = request.options.for_device(index).render  # a camera's own, else the export's
        if render is None:
            continue
        end_us = max(device.end_us, device.start_us + 1)
        segments = await archive.segments(device.device_id, device.start_us, end_us)
        if not segments:
            continue
        try:
            size = await run_io(picture_size, segments[0].path_text)
        except MediaError:
            continue  # unreadable now: the job reports it
        if size is None:
            continue
        try:
            output_size(render, *size)
        except OutOfRangeError as exc:
            raise OutOfRangeError(f"device {device.device_id}: {exc.description}; the "
                                  f"recording is {size[0]}x{size[1]}") from None
