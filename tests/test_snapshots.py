"""Snapshots (export/snapshot.py) and getSnapshot over HTTP: the frame shown at an instant.

The expected frame is found independently: every source frame is decoded with PyAV and the
last one whose archive time is at or before the instant is the answer; a PNG snapshot must
hold exactly its pixels.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from sense_plugin.errors import NoRecordError
from sense_plugin.media.cutspec import SourceSegment
from sense_plugin.media.renderoptions import RenderOptions
from sense_plugin.media.snapshot import grab
from sense_plugin.timestamps import format_timestamp
from tests.apiclient import command
from tests.conftest import API_DEVICES, MEDIA_T0_US, MakeSegments

US = 1_000_000


def sources(paths: list[Any], segment_s: float) -> tuple[SourceSegment, ...]:
    step = int(segment_s * US)
    return tuple(SourceSegment(str(p), MEDIA_T0_US + i * step, MEDIA_T0_US + (i + 1) * step)
                 for i, p in enumerate(paths))


def expected_frame(segments: tuple[SourceSegment, ...], instant_us: int) -> tuple[int, Any]:
    """(archive µs, RGB pixels) of the last decoded frame at or before ``instant_us``."""
    best: tuple[int, Any] | None = None
    for segment in segments:
        with av.open(segment.path) as container:
            for frame in container.decode(video=0):
                assert frame.pts is not None and frame.time_base is not None
                t_us = segment.start_us + int(frame.pts * frame.time_base * US)
                if t_us <= instant_us and (best is None or t_us >= best[0]):
                    best = (t_us, frame.to_ndarray(format="rgb24"))
    assert best is not None
    return best


@pytest.mark.parametrize("bframes", [0, 2])
@pytest.mark.parametrize("offset_us", [0, 1_550_000, 2_000_000, 3_999_999])
def test_png_holds_exactly_the_frame_shown(make_segments: MakeSegments, bframes: int,
                                           offset_us: int) -> None:
    segs = sources(make_segments(width=160, height=90, segment_s=2.0, bframes=bframes,
                                 end_us=MEDIA_T0_US + 4 * US), 2.0)
    instant = MEDIA_T0_US + offset_us
    snap = grab(segs, instant, "png")
    frame_us, pixels = expected_frame(segs, instant)
    assert snap.frame_us == frame_us
    image = np.asarray(Image.open(io.BytesIO(snap.data)).convert("RGB"))
    assert image.shape == (90, 160, 3)
    assert np.array_equal(image, pixels)


def test_jpeg_scaled_and_close_to_the_frame(make_segments: MakeSegments) -> None:
    segs = sources(make_segments(width=320, height=180, segment_s=2.0,
                                 end_us=MEDIA_T0_US + 4 * US), 2.0)
    instant = MEDIA_T0_US + 2_345_000
    full = grab(segs, instant, "jpg")
    assert full.content_type == "image/jpeg" and full.frame_us == MEDIA_T0_US + 2_300_000
    _, pixels = expected_frame(segs, instant)
    decoded = np.asarray(Image.open(io.BytesIO(full.data)).convert("RGB")).astype(float)
    mse = ((decoded - pixels) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 30  # PSNR in dB
    small = grab(segs, instant, "jpg", RenderOptions(width=96))
    assert (small.width, small.height) == (96, 54)


def test_instant_in_a_gap_or_outside_is_no_record(make_segments: MakeSegments) -> None:
    segs = sources(make_segments(width=160, height=90, segment_s=2.0,
                                 end_us=MEDIA_T0_US + 4 * US), 2.0)
    with pytest.raises(NoRecordError):
        grab(segs, MEDIA_T0_US - 1, "jpg")
    with pytest.raises(NoRecordError):
        grab(segs[:1], MEDIA_T0_US + 2_500_000, "jpg")


async def test_get_snapshot_over_http(client: Any, api_archive: dict[str, Any]) -> None:
    instant = api_archive["start_us"] + 12_340_000
    url = "/command"
    params = {"command": "getSnapshot", "deviceid": str(API_DEVICES["Steady"]),
              "time": format_timestamp(instant), "width": "32"}
    response = await client.get(url, params=params)
    assert response.status == 200 and response.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(await response.read()))
    assert image.size == (32, 32)
    assert response.headers["X-Frame-Time"] == format_timestamp(api_archive["start_us"]
                                                                + 12_300_000)
    etag = response.headers["ETag"]
    again = await client.get(url, params=params, headers={"If-None-Match": etag})
    assert again.status == 304
    png = await client.get(url, params={**params, "format": "PNG"})
    assert png.content_type == "image/png"
    newest = await client.get(url, params={"command": "getsnapshot",
                                           "deviceid": str(API_DEVICES["Matroska"])})
    assert newest.status == 200
    assert newest.headers["X-Frame-Time"] >= format_timestamp(api_archive["end_us"] - US)


async def test_get_snapshot_bad_input(client: Any, api_archive: dict[str, Any]) -> None:
    gappy = str(API_DEVICES["Gappy"])
    in_gap = format_timestamp(api_archive["start_us"] + 30 * US)
    result = await command(client, "getSnapshot", deviceid=gappy, time=in_gap, expect=-9)
    text = result.findtext("description")
    assert "nearest" in text and format_timestamp(api_archive["start_us"] + 40 * US) in text
    await command(client, "getSnapshot", expect=-10)
    await command(client, "getSnapshot", deviceid="1", expect=-2)
    await command(client, "getSnapshot", deviceid=str(API_DEVICES["Off"]), expect=-21)
    await command(client, "getSnapshot", deviceid=gappy, format="gif", expect=-22)
    await command(client, "getSnapshot", deviceid=gappy, width="8", expect=-22)
    await command(client, "getSnapshot", deviceid=gappy, time="yesterday", expect=-4)
