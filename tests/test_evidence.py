"""Evidence rendering (media/rendering.py, overlay.py, options.py) and the ``<render>`` parser.

Every rendered file is decoded again with PyAV; overlay and mask checks compare pixels with
what the source frame at the same archive time holds, decoded independently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from lxml import etree

from sense_plugin.errors import SenseError
from sense_plugin.export.renderxml import parse_render
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.overlay import TextPainter, split_planes
from sense_plugin.media.rendering import RenderRequest
from sense_plugin.media.renderoptions import Comment, Mask, Rect, RenderOptions, Timestamp
from sense_plugin.media.renderrun import render
from tests.conftest import MEDIA_T0_US, MakeSegments

US = 1_000_000


@pytest.fixture
def segments(make_segments: MakeSegments) -> tuple[SourceSegment, ...]:
    """6 s of 320x180, 10 fps, with audio, in 2 s segments."""
    paths = make_segments(width=320, height=180, fps=10, gop_frames=10, audio=True,
                          end_us=MEDIA_T0_US + 6 * US)
    return tuple(SourceSegment(str(p), MEDIA_T0_US + i * 2 * US, MEDIA_T0_US + (i + 1) * 2 * US)
                 for i, p in enumerate(paths))


def run_render(segments: tuple[SourceSegment, ...], tmp_path: Path, options: RenderOptions,
               start_s: float = 1.05, end_s: float = 4.55, fmt: str = "mp4") -> Any:
    out = tmp_path / f"out.{fmt}"
    source = SourceRange(segments, MEDIA_T0_US + int(start_s * US), MEDIA_T0_US + int(end_s * US))
    result = render(RenderRequest(source, str(out), fmt, options, {"title": "CAM"}))
    return out, result


def decoded(path: Path) -> list[tuple[int, np.ndarray[Any, Any]]]:
    """(pts in µs from the file's start, Y plane) of every frame."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.time_base is not None
            luma = frame.to_ndarray(format="yuv420p")[:frame.height]
            frames.append((int(frame.pts * frame.time_base * US), luma))
    return frames


def source_frame(segments: tuple[SourceSegment, ...], archive_us: int) -> np.ndarray[Any, Any]:
    """The yuv420p array of the source frame shown at ``archive_us``."""
    for segment in segments:
        if segment.start_us <= archive_us < segment.end_us:
            with av.open(segment.path) as container:
                for frame in container.decode(video=0):
                    assert frame.pts is not None and frame.time_base is not None
                    if segment.start_us + int(frame.pts * frame.time_base * US) >= archive_us:
                        return frame.to_ndarray(format="yuv420p")
    raise AssertionError("no source frame")


@pytest.mark.parametrize("fmt", ["mp4", "mkv", "ts"])
def test_exact_start_every_frame_decodes_audio_kept(segments: Any, tmp_path: Path,
                                                     fmt: str) -> None:
    out, result = run_render(segments, tmp_path, RenderOptions(), fmt=fmt)
    frames = decoded(out)
    # frames at 1.1 .. 4.5 s: the first at or after the start, the last before the end
    assert result.first_frame_us == MEDIA_T0_US + 1_100_000
    assert result.last_frame_us == MEDIA_T0_US + 4_500_000
    assert len(frames) == result.frame_count == 35
    times = [t for t, _ in frames]
    assert times == sorted(times) and times[-1] - times[0] == 3_400_000
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        packets = sum(1 for p in container.demux(audio) if p.size)
    assert packets == result.audio_packets > 0


def test_burned_in_timestamp_shows_each_frames_archive_time(segments: Any,
                                                            tmp_path: Path) -> None:
    style = Timestamp(fmt="%H:%M:%S.%f", size=0.12, position="bottom-right",
                      color=(255, 255, 0))
    out, result = run_render(segments, tmp_path, RenderOptions(timestamp=style,
                                                               quality="high"))
    frames = decoded(out)
    checked = 0
    for index in (0, 7, 20, len(frames) - 1):
        offset_us, luma = frames[index]
        archive_us = result.first_frame_us + offset_us
        moment = datetime.fromtimestamp(archive_us / US, UTC)
        right = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
        wrong = (datetime.fromtimestamp(archive_us / US + 3.7, UTC)).strftime("%H:%M:%S.%f")[:12]
        expected = {}
        for label, text in (("right", right), ("wrong", wrong)):
            planes = split_planes(source_frame(segments, archive_us).copy(), 320, 180)
            TextPainter(style, 320, 180).paint(planes, text)
            expected[label] = planes.y.astype(int)
        # where the two texts differ, the file must look like the right one
        differ = np.abs(expected["right"] - expected["wrong"]) > 40
        assert differ.sum() > 50
        errors = {label: float(np.abs(image - luma.astype(int))[differ].mean())
                  for label, image in expected.items()}
        assert errors["right"] < 15 and errors["wrong"] > 4 * errors["right"], (index, errors)
        checked += 1
    assert checked == 4


def test_solid_mask_leaves_no_detail_pixelate_leaves_blocks(segments: Any,
                                                            tmp_path: Path) -> None:
    solid = Rect(0.5, 0.4, 0.4, 0.5)
    coarse = Rect(0.05, 0.3, 0.4, 0.5)
    options = RenderOptions(masks=(Mask(solid, "solid"), Mask(coarse, "pixelate")),
                            comment=Comment(text="Case 4711", size=0.08))
    out, result = run_render(segments, tmp_path, options)
    sx, sy, sw, sh = solid.pixels(320, 180)
    cx, cy, cw, ch = coarse.pixels(320, 180)
    for offset_us, luma in decoded(out)[::5]:
        region = luma[sy + 2:sy + sh - 2, sx + 2:sx + sw - 2].astype(float)
        assert region.var() < 1.0
        src = split_planes(source_frame(segments, result.first_frame_us + offset_us),
                           320, 180).y[cy:cy + ch, cx:cx + cw].astype(float)
        got = luma[cy:cy + ch, cx:cx + cw].astype(float)
        # inside the blocks neighbouring pixels are (nearly) equal; in the source they are not
        def flat_share(image: np.ndarray[Any, Any]) -> float:
            return float((np.abs(np.diff(image, axis=1)) <= 2).mean())
        assert flat_share(got) > 0.75 > 0.4 > flat_share(src)
        assert src[4:-4, 4:-4].var() > 100


def test_crop_scale_and_decimation(segments: Any, tmp_path: Path) -> None:
    options = RenderOptions(crop=Rect(0.25, 0.25, 0.5, 0.5), width=80, fps=5.0)
    out, result = run_render(segments, tmp_path, options, start_s=1.0, end_s=5.0)
    frames = decoded(out)
    # the crop is aligned outwards to even pixels (rows 44..136), then scaled to 80 wide
    assert frames[0][1].shape == (46, 80)
    assert len(frames) == result.frame_count == 20
    gaps = np.diff([t for t, _ in frames])
    assert set(gaps.tolist()) == {200_000}


def test_h265_in_matroska(segments: Any, tmp_path: Path) -> None:
    out, result = run_render(segments, tmp_path, RenderOptions(codec="h265", quality="low"),
                             fmt="mkv")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    assert len(decoded(out)) == result.frame_count == 35


def test_width_above_the_source_fails_with_22(segments: Any, tmp_path: Path) -> None:
    with pytest.raises(SenseError) as caught:
        run_render(segments, tmp_path, RenderOptions(width=640))
    assert int(caught.value.code) == -22 and "render/width" in caught.value.description
    assert not list(tmp_path.iterdir())  # the temporary file is gone


# -- the <render> parser ------------------------------------------------------------------------


def parse(xml: str) -> RenderOptions:
    return parse_render(etree.fromstring(f"<render>{xml}</render>"))


def test_parse_every_option() -> None:
    options = parse(
        "<timestamp><format>%d.%m.%Y %H:%M:%S</format><position>TOP-RIGHT</position>"
        "<color>#00ff00</color><size>0.05</size><timezone>Europe/Berlin</timezone></timestamp>"
        "<comment><text>Case 4711</text></comment>"
        "<mask><x>0.1</x><y>0.2</y><w>0.25</w><h>0.3</h><style>pixelate</style></mask>"
        "<mask><x>0</x><y>0</y><w>1</w><h>1</h></mask>"
        "<crop><x>0</x><y>0</y><w>0.5</w><h>0.5</h></crop><width>1280</width><fps>5</fps>"
        "<codec>H265</codec><quality>high</quality>")
    assert options.timestamp == Timestamp(fmt="%d.%m.%Y %H:%M:%S", position="top-right",
                                          color=(0, 255, 0), size=0.05,
                                          timezone="Europe/Berlin")
    assert options.comment == Comment(text="Case 4711")
    assert [m.style for m in options.masks] == ["pixelate", "solid"]
    assert (options.width, options.fps, options.codec, options.quality) == (1280, 5.0, "h265",
                                                                             "high")
    described = dict(options.describe())
    assert described["mask1"] == "pixelate x=0.1 y=0.2 w=0.25 h=0.3"
    assert described["timestamp.timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(("xml", "code", "names"), [
    ("<timestamp><position>middle</position></timestamp>", -22, "render/timestamp/position"),
    ("<timestamp><color>white</color></timestamp>", -22, "render/timestamp/color"),
    ("<timestamp><color>#FFF</color></timestamp>", -22, "render/timestamp/color"),
    ("<timestamp><format>%Q</format></timestamp>", -22, "render/timestamp/format"),
    ("<timestamp><format>" + "%H" * 51 + "</format></timestamp>", -22, "100 characters"),
    ("<timestamp><timezone>Mars/Olympus</timezone></timestamp>", -22, "timezone"),
    ("<timestamp><size>0.9</size></timestamp>", -22, "render/timestamp/size"),
    ("<comment><position>top-left</position></comment>", -10, "<text>"),
    ("<comment><text></text></comment>", -23, "<text>"),
    ("<mask><x>0.8</x><y>0</y><w>0.3</w><h>0.1</h></mask>", -22, "render/mask[1]"),
    ("<mask><x>0.1</x><y>0</y><w>0</w><h>0.1</h></mask>", -22, "render/mask[1]"),
    ("<mask><x>-0.1</x><y>0</y><w>0.1</w><h>0.1</h></mask>", -22, "render/mask[1]/x"),
    ("<mask><x>0.1</x><y>0</y><w>0.1</w></mask>", -10, "<h>"),
    ("<mask><x>0.1</x><y>0</y><w>0.1</w><h>0.1</h><style>blur</style></mask>", -22, "style"),
    ("<crop><x>0.5</x><y>0.5</y><w>0.6</w><h>0.1</h></crop>", -22, "render/crop"),
    ("<fps>0</fps>", -22, "render/fps"),
    ("<fps>-5</fps>", -22, "render/fps"),
    ("<fps>fast</fps>", -22, "render/fps"),
    ("<width>8</width>", -22, "render/width"),
    ("<width>1e3</width>", -22, "render/width"),
    ("<codec>vp9</codec>", -22, "render/codec"),
    ("<quality>best</quality>", -22, "render/quality"),
])
def test_parse_refuses_bad_values_naming_the_element(xml: str, code: int, names: str) -> None:
    with pytest.raises(SenseError) as caught:
        parse(xml)
    assert int(caught.value.code) == code
    assert names in caught.value.description
