"""The body of an export worker process: receive cut jobs, run them, report back.

Imports PyAV (through ``remux``) and never aiohttp; the messages are in ``messages``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

from sense_plugin.errors import (
    MediaError,
    ParametersChangedError,
    ResultCode,
    SenseError,
    new_incident,
)
from sense_plugin.filemodel import FileInfo
from sense_plugin.media.cutspec import PartFile
from sense_plugin.media.follow import Feed, cut_while_recording, follow_cut
from sense_plugin.media.messages import (
    Cancel,
    Cancelled,
    CutJob,
    Done,
    Failed,
    FeedSegments,
    Finish,
    Progress,
    Reply,
    SetRate,
    Shutdown,
    Written,
)
from sense_plugin.media.parts import cut_parts
from sense_plugin.media.remux import CutCancelled, CutRequest, CutResult, cut
from sense_plugin.media.rendering import RenderRequest
from sense_plugin.media.renderoptions import RenderOptions
from sense_plugin.media.renderrun import render
from sense_plugin.media.runs import cut_runs
from sense_plugin.media.split import split_file
from sense_plugin.media.still import write_snapshot
from sense_plugin.media.throttle import TokenBucket

CONTROL_INTERVAL_S = 0.02
#: Exports are background work: when cores are short, the event loop answering status polls
#: runs first (bench B2: p99 of status queries while two exports run on two cores).
WORKER_NICE = 10


def worker_main(conn: Connection) -> None:
    """Serve jobs until told to stop or the parent goes away.

    Jobs run one at a time in the order received: a job that arrives while another runs is
    kept and served after it, never dropped. A shutdown that arrives while a job runs cancels
    that job (its temporary file is deleted) and ends the worker once the job has answered;
    jobs kept for later are not started (the server runs them again after its restart).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    with contextlib.suppress(OSError):  # not permitted (some containers): normal priority
        os.nice(WORKER_NICE)
    later: list[CutJob | Shutdown] = []
    while True:
        if later:
            message = later.pop(0)
        else:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
        if isinstance(message, Shutdown):
            return
        if isinstance(message, CutJob):
            reply = run_job(conn, message, later)
            try:
                conn.send(reply)
            except OSError:
                return
        # rate/cancel messages that arrive between jobs are stale: ignore them


class _Control:
    """Reads rate and cancel messages from the parent, at most every 20 ms."""

    def __init__(self, conn: Connection, throttle: TokenBucket,
                 later: list[CutJob | Shutdown]) -> None:
        self.conn = conn
        self.throttle = throttle
        #: Jobs received while this job runs, served after it; a shutdown also cancels it.
        self.later = later
        self.cancelled = False
        #: ``Finish`` received (action=stop): the cut ends its file at the next packet.
        self.finishing = False
        #: Segments of a live export that follows the recording (``segments`` messages).
        self.feed = Feed()
        self._next_check = 0.0

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CONTROL_INTERVAL_S
            try:
                while self.conn.poll():
                    message = self.conn.recv()
                    if isinstance(message, Cancel):
                        self.cancelled = True
                    elif isinstance(message, Finish):
                        self.finishing = True
                    elif isinstance(message, SetRate):
                        self.throttle.set_rate(message.kbps)
                    elif isinstance(message, FeedSegments):
                        self.feed.add(message.segments, message.ended)
                    elif isinstance(message, CutJob):
                        self.later.append(message)
                    elif isinstance(message, Shutdown):  # the server is going: stop now,
                        self.later[:] = [message]  # and start nothing kept for later
                        self.cancelled = True
            except (EOFError, OSError):  # the server died: stop, the cut deletes its temp file
                self.cancelled = True
        return self.cancelled


def run_job(conn: Connection, job: CutJob, later: list[CutJob | Shutdown]) -> Reply:
    """Cut one device range; returns the final message for the parent. Jobs that arrive
    meanwhile are appended to ``later``; a shutdown cancels the cut and replaces them."""
    throttle = TokenBucket(job.bandwidth_kbps)
    control = _Control(conn, throttle, later)

    last = Progress(0, 0, time.monotonic())

    def progress(done_us: int, size_bytes: int) -> None:
        nonlocal last
        last = Progress(done_us, size_bytes, time.monotonic())
        conn.send(last)

    # while a capped job waits for its bandwidth, the bytes it lets through are its progress
    throttle.on_paced = lambda passed: conn.send(
        Progress(last.done_us, max(last.size_bytes, passed), time.monotonic()))

    options = job.options
    try:
        if options.snapshot:
            return Done((write_snapshot(job),))
        request = CutRequest(
            source=job.source, out_path=job.out_path, fmt=job.fmt, title=job.title,
            comment=job.comment, audio=options.audio, subtitles=options.timestamps == "subtitle",
        )
        if cut_while_recording(options.live, options.render is not None, request.subtitles,
                               job.source.end_us):  # cut while the recording grows (follow.py)
            control.feed.add(job.source.segments, False)
            result = follow_cut(request, control.feed, control.should_stop, throttle=throttle,
                                on_progress=progress, should_finish=lambda: control.finishing)
        elif options.render is not None:
            result = render_job(request, options.render, throttle, progress, control.should_stop)
        elif options.maxfilesize_mb and not request.subtitles:  # split while cutting
            result, parts = cut_parts(
                request, options.maxfilesize_bytes, device_id=job.device_id,
                throttle=throttle, on_progress=progress, should_stop=control.should_stop,
                should_finish=lambda: control.finishing)
            if parts:
                return Done(_parts(parts), result.stopped_us, split=True)
            return Done((_written(result, job.name),), result.stopped_us)
        else:
            try:
                result = cut(request, throttle=throttle, on_progress=progress,
                             should_stop=control.should_stop,
                             should_finish=lambda: control.finishing)
            except ParametersChangedError:  # one file per run of equal parameters
                runs, note = cut_runs(request, job.device_id, on_progress=progress,
                                      throttle=throttle, should_stop=control.should_stop)
                return Done(_parts(runs), None, split=True, note=note)
        if options.maxfilesize_mb and result.size_bytes > options.maxfilesize_bytes:
            # rendered or with a subtitle track: cut whole, then split (two passes)
            parts = _split(request, result, job, control)
            return Done(_parts(parts), result.stopped_us, split=True)
        return Done((_written(result, job.name),), result.stopped_us)
    except CutCancelled:
        return Cancelled()
    except SenseError as exc:
        return Failed(int(exc.code), exc.description)
    except MediaError as exc:
        return Failed(int(ResultCode.GENERAL_ERROR), f"cannot cut the recording: {exc}")
    except Exception:
        # The parent logs the traceback under the incident id the description repeats.
        return Failed(int(ResultCode.GENERAL_ERROR),
                      f"unexpected failure while cutting; reported as incident {new_incident()}",
                      traceback.format_exc())


def _written(result: CutResult, name: str) -> Written:
    info = FileInfo(name=name, size_bytes=result.size_bytes, sha256=result.sha256,
                    first_frame_us=result.first_frame_us, last_frame_us=result.last_frame_us,
                    frame_count=result.frame_count, gaps=result.gaps)
    return Written(info, result.file_dev, result.file_ino)


def _parts(parts: list[PartFile]) -> tuple[Written, ...]:
    """The files of a split or per-run cut as the message reports them."""
    return tuple(Written(p.info(), p.file_dev, p.file_ino) for p in parts)


def render_job(request: CutRequest, render_options: RenderOptions, throttle: TokenBucket,
               progress: Callable[[int, int], None], should_stop: Callable[[], bool]) -> CutResult:
    """The ``<render>`` path: decode, filter, encode (media/renderrun.py), same contract as cut."""
    metadata = {k: v for k, v in (("title", request.title), ("comment", request.comment)) if v}
    return render(RenderRequest(request.source, request.out_path, request.fmt, render_options,
                                metadata, subtitles=request.subtitles),
                  throttle=throttle, on_progress=progress, should_stop=should_stop)


def _split(request: CutRequest, result: CutResult, job: CutJob,
           control: _Control) -> list[PartFile]:
    """The parts of the finished cut; the whole file is deleted either way."""
    try:
        return split_file(request.out_path, result, request.fmt, job.options.maxfilesize_bytes,
                          job.title, job.device_id, request.title, request.comment,
                          control.should_stop)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(request.out_path)
