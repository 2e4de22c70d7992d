"""H.265 renders of one or two frames (media/rendering.py).

libx265 stamps the decode time of so short an output from memory it never set, which failed
a render now and then ("patches welcome" from the MP4 muxer) or wrote a nonsense decode time.
The render runs in a child process whose C heap hands out poisoned memory (glibc's
``MALLOC_PERTURB_``), so the unset value is garbage every time instead of by chance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from sense_plugin.media.cutspec import SourceSegment
from tests.conftest import MEDIA_T0_US, MakeSegments

US = 1_000_000

#: Renders ``sys.argv[1]`` (JSON: segments, start, frames, output) at one frame a second.
CHILD = """
import json, sys
from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.rendering import RenderRequest
from sense_plugin.media.renderoptions import RenderOptions
from sense_plugin.media.renderrun import render
job = json.loads(sys.argv[1])
segments = tuple(SourceSegment(*s) for s in job["segments"])
source = SourceRange(segments, job["start_us"], job["start_us"] + job["frames"] * 1_000_000)
options = RenderOptions(width=30, fps=1.0, codec="h265")
result = render(RenderRequest(source, job["out"], "mp4", options), fsync=False)
print(result.frame_count)
"""


@pytest.fixture
def segments(make_segments: MakeSegments) -> tuple[SourceSegment, ...]:
    """6 s of 64x64 at 10 fps in 2 s segments."""
    paths = make_segments()
    return tuple(SourceSegment(str(p), MEDIA_T0_US + i * 2 * US, MEDIA_T0_US + (i + 1) * 2 * US)
                 for i, p in enumerate(paths))


def packet_times(path: Path) -> list[tuple[int | None, int | None]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.dts) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("frames", [1, 2])
def test_an_h265_render_of_one_or_two_frames_completes_in_display_order(
        segments: tuple[SourceSegment, ...], tmp_path: Path, frames: int) -> None:
    out = tmp_path / "out.mp4"
    job = {"segments": [[s.path, s.start_us, s.end_us] for s in segments],
           "start_us": MEDIA_T0_US + US, "frames": frames, "out": str(out)}
    env = {**os.environ, "MALLOC_PERTURB_": "85"}
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split()[-1] == str(frames)
    times = packet_times(out)
    assert len(times) == frames, times
    # one or two frames are never reordered: each decodes at its display time
    assert all(dts == pts for pts, dts in times), times
    assert [pts for pts, _ in times] == sorted(pts for pts, _ in times), times
