"""An export worker given a second job (or a shutdown) while a job runs: it is kept and served
after the running one, never dropped (a real worker process, real ffmpeg-made segments)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import av

from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.messages import CutJob, Done, Progress, Shutdown
from sense_plugin.media.worker import worker_main
from tests.corpus import segment_span
from tests.ffmpegtools import ffmpeg_segments

SEGMENT_US = 1_000_000


def _job(segments: tuple[SourceSegment, ...], out: Path) -> CutJob:
    source = SourceRange(segments, segments[0].start_us, segments[-1].end_us)
    return CutJob(source=source, fmt="mp4", out_path=str(out), name=out.name, bandwidth_kbps=0,
                  device_id=1, title="Cam", comment="", options=ExportOptions())


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_job_and_a_shutdown_sent_while_a_job_runs_are_served_after_it(tmp_path: Path) -> None:
    paths = ffmpeg_segments(tmp_path / "src", 3, "mp4")
    segments = tuple(SourceSegment(str(p), *segment_span(p, i * SEGMENT_US))
                     for i, p in enumerate(paths))
    outs = [tmp_path / "first.mp4", tmp_path / "second.mp4"]
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    proc = context.Process(target=worker_main, args=(child,), daemon=True)
    proc.start()
    child.close()
    try:
        for out in outs:  # the second arrives while the first is being cut
            parent.send(_job(segments, out))
        parent.send(Shutdown())
        replies = []
        while len(replies) < 2:
            assert parent.poll(60), f"no reply to job {len(replies) + 1} of 2"
            message = parent.recv()
            if not isinstance(message, Progress):
                replies.append(message)
        proc.join(30)
        assert proc.exitcode == 0  # the shutdown was served after the second job
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
    assert [type(r) for r in replies] == [Done, Done]
    assert [r.files[0].info.name for r in replies] == ["first.mp4", "second.mp4"]
    assert _frames(outs[0]) == _frames(outs[1]) > 0
