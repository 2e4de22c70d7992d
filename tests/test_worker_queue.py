"""An export worker sent a second job or a shutdown while a job runs (a real worker process,
real ffmpeg-made segments): the job is kept and served after the running one, never dropped;
the shutdown cancels the running job, deletes its partial file and ends the worker."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import av
import pytest

from sense_plugin.media.cutspec import SourceRange, SourceSegment
from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.messages import Cancelled, CutJob, Done, Progress, Reply, Shutdown
from sense_plugin.media.worker import worker_main
from tests.corpus import segment_span
from tests.ffmpegtools import ffmpeg_segments

SEGMENT_US = 1_000_000
REPLY_WAIT_S = 60


@pytest.fixture
def segments(tmp_path: Path) -> tuple[SourceSegment, ...]:
    paths = ffmpeg_segments(tmp_path / "src", 3, "mp4")
    return tuple(SourceSegment(str(p), *segment_span(p, i * SEGMENT_US))
                 for i, p in enumerate(paths))


@pytest.fixture
def worker() -> Iterator[tuple[Connection, multiprocessing.process.BaseProcess]]:
    context = multiprocessing.get_context("forkserver")
    parent, child = context.Pipe()
    proc = context.Process(target=worker_main, args=(child,), daemon=True)
    proc.start()
    child.close()
    try:
        yield parent, proc
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()


def _job(segments: tuple[SourceSegment, ...], out: Path) -> CutJob:
    source = SourceRange(segments, segments[0].start_us, segments[-1].end_us)
    return CutJob(source=source, fmt="mp4", out_path=str(out), name=out.name, bandwidth_kbps=0,
                  device_id=1, title="Cam", comment="", options=ExportOptions())


def _replies(conn: Connection, count: int) -> list[Reply]:
    replies: list[Reply] = []
    while len(replies) < count:
        assert conn.poll(REPLY_WAIT_S), f"no reply to job {len(replies) + 1} of {count}"
        message = conn.recv()
        if not isinstance(message, Progress):
            replies.append(message)
    return replies


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_job_sent_while_a_job_runs_is_served_after_it(
    tmp_path: Path, segments: tuple[SourceSegment, ...],
    worker: tuple[Connection, multiprocessing.process.BaseProcess],
) -> None:
    conn, proc = worker
    outs = [tmp_path / "first.mp4", tmp_path / "second.mp4"]
    for out in outs:  # the second arrives while the first is being cut
        conn.send(_job(segments, out))
    replies = _replies(conn, 2)
    assert [type(r) for r in replies] == [Done, Done]
    assert [r.files[0].info.name for r in replies] == ["first.mp4", "second.mp4"]
    assert _frames(outs[0]) == _frames(outs[1]) > 0
    conn.send(Shutdown())
    proc.join(REPLY_WAIT_S)
    assert proc.exitcode == 0


def test_a_shutdown_sent_while_a_job_runs_cancels_it_and_ends_the_worker(
    tmp_path: Path, segments: tuple[SourceSegment, ...],
    worker: tuple[Connection, multiprocessing.process.BaseProcess],
) -> None:
    conn, proc = worker
    out = tmp_path / "cut.mp4"
    conn.send(_job(segments, out))
    conn.send(_job(segments, tmp_path / "never.mp4"))  # kept for later, never started
    conn.send(Shutdown())  # in the pipe before the cut's first look at it
    assert [type(r) for r in _replies(conn, 1)] == [Cancelled]
    proc.join(REPLY_WAIT_S)
    assert proc.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no file, no partial file
