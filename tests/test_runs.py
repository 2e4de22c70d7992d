"""A range across a change of picture size is cut as one file per run (media/runs.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest
from conftest import MEDIA_T0_US
from oracle import Claim, check_file

from sense_plugin.errors import GeneralError, ParametersChangedError
from sense_plugin.media.cutspec import CutRequest, SourceRange, SourceSegment
from sense_plugin.media.remux import cut
from sense_plugin.media.runs import cut_runs, split_runs
from sense_plugin.naming import parse_segment_filename
from sense_plugin.outputpaths import is_part_temporary, part_name

CHANGE_US = MEDIA_T0_US + 4_000_000
END_US = MEDIA_T0_US + 8_000_000


@pytest.fixture(scope="module")
def source(make_segments: Any) -> tuple[SourceSegment, ...]:
    """4 s at 320x240, then 4 s at 160x120 (the recorder starts a segment at a change)."""
    paths = [*make_segments(end_us=CHANGE_US, segment_s=2.0, width=320, height=240),
             *make_segments(start_us=CHANGE_US, end_us=END_US, segment_s=2.0, width=160,
                            height=120)]
    starts = [parse_segment_filename(p.name) or 0 for p in paths]
    ends = [*starts[1:], END_US]
    return tuple(SourceSegment(str(p), s, e) for p, s, e in zip(paths, starts, ends, strict=True))


def test_runs_split_the_range_where_the_parameters_change(source: Any) -> None:
    t0, t1 = MEDIA_T0_US + 1_000_000, MEDIA_T0_US + 7_000_000
    runs = split_runs(CutRequest(SourceRange(source, t0, t1), "/x/cam.mp4"))
    assert [(r.source.start_us, r.source.end_us) for r, _ in runs] == [(t0, CHANGE_US),
                                                                        (CHANGE_US, t1)]
    assert [p for _, p in runs] == [("h264", 320, 240), ("h264", 160, 120)]
    assert [r.out_path for r, _ in runs] == ["/x/cam.mp4.p001.part", "/x/cam.mp4.p002.part"]


def test_one_file_per_run_in_order_every_frame_once(tmp_path: Path, source: Any) -> None:
    t0, t1 = MEDIA_T0_US + 1_000_000, MEDIA_T0_US + 7_000_000
    request = CutRequest(SourceRange(source, t0, t1), str(tmp_path / "cam.mp4"), title="Cam")
    with pytest.raises(ParametersChangedError):
        cut(request, fsync=False)
    files, note = cut_runs(request, 7, fsync=False)
    assert note == ("the video changes inside the range: one file per run "
                    "(h264 320x240, h264 160x120)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name for f in files]
    assert [f.name.rsplit("_", 1)[1] for f in files] == ["part001.mp4", "part002.mp4"]
    sizes = []
    for part in files:
        path = Path(part.path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == part.sha256
        assert (path.stat().st_dev, path.stat().st_ino) == (part.file_dev, part.file_ino)
        assert part.info().name == part.name and not part.oversize
        check_file(path, Claim.of_result(part),
                   requested=(t0, t1) if part is files[-1] else None)
        with av.open(part.path) as container:
            video = container.streams.video[0]
            sizes.append((video.codec_context.width, video.codec_context.height))
    assert sizes == [(320, 240), (160, 120)]
    assert files[0].first_frame_us == t0 and files[1].first_frame_us == CHANGE_US
    assert sum(f.frame_count for f in files) == (t1 - t0) // 100_000  # 10 fps


def test_a_taken_name_fails_the_device_and_is_left_alone(tmp_path: Path, source: Any) -> None:
    """Another device's file with the name of the second run's file (the same device twice
    in one export) is never replaced: this device fails (-18) and leaves nothing."""
    t0, t1 = MEDIA_T0_US + 1_000_000, MEDIA_T0_US + 7_000_000
    taken = tmp_path / part_name("Cam", 7, CHANGE_US, "mp4", 2)
    taken.write_bytes(b"the other device's part")
    request = CutRequest(SourceRange(source, t0, t1), str(tmp_path / "cam.mp4"), title="Cam")
    with pytest.raises(GeneralError, match=taken.name):
        cut_runs(request, 7, fsync=False)
    assert list(tmp_path.iterdir()) == [taken]
    assert taken.read_bytes() == b"the other device's part"


KILLED_IN_SECOND_RUN = """
import os, signal, sys
from sense_plugin.media.cutspec import CutRequest, SourceRange, SourceSegment
from sense_plugin.media.runs import cut_runs

change_us, out = int(sys.argv[1]), sys.argv[2]
segments = tuple(SourceSegment(p, int(s), int(e)) for p, s, e in
                 (line.split(" ") for line in sys.argv[3:]))
request = CutRequest(SourceRange(segments, segments[0].start_us, segments[-1].end_us), out,
                     title="Cam")
first_run_us = change_us - segments[0].start_us

def progress(done_us, size_bytes):
    if done_us > first_run_us and size_bytes > 0:  # the second run has written: die now
        os.kill(os.getpid(), signal.SIGKILL)

cut_runs(request, 7, on_progress=progress, fsync=False, progress_interval_s=0.0)
"""


def test_a_worker_killed_mid_run_leaves_only_names_the_clean_up_deletes(
        tmp_path: Path, source: Any) -> None:
    """Killed while it cuts the second run, the first run's file already complete: every
    file left is a temporary of the planned name (export/files.py deletes those when the
    device did not complete), none carries a final name nobody lists."""
    args = [f"{s.path} {s.start_us} {s.end_us}" for s in source]
    done = subprocess.run([sys.executable, "-c", KILLED_IN_SECOND_RUN, str(CHANGE_US),
                           str(tmp_path / "cam.mp4"), *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(is_part_temporary(name, "cam.mp4") for name in left), left
