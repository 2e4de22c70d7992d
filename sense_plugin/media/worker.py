"""The body of an export worker process: receive cut jobs, run them, report back.

Imports PyAV (through ``remux``) and never aiohttp; see ``pool`` for the message protocol.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

from sense_plugin.errors import MediaError, ResultCode, SenseError
from sense_plugin.evidence.options import RenderOptions
from sense_plugin.evidence.render import RenderRequest
from sense_plugin.evidence.run import render
from sense_plugin.export.options import ExportOptions
from sense_plugin.media.follow import Feed, cut_while_recording, follow_cut
from sense_plugin.media.parts import cut_parts
from sense_plugin.media.remux import CutCancelled, CutRequest, CutResult, SourceSegment, cut
from sense_plugin.media.split import split_file
from sense_plugin.media.still import write_snapshot
from sense_plugin.media.throttle import TokenBucket

TEMP_SUFFIX = ".part"
CONTROL_INTERVAL_S = 0.02
#: Exports are background work: when cores are short, the event loop answering status polls
#: runs first (bench B2: p99 of status queries while two exports run on two cores).
WORKER_NICE = 10


def worker_main(conn: Connection) -> None:
    """Serve jobs until told to stop or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    with contextlib.suppress(OSError):  # not permitted (some containers): normal priority
        os.nice(WORKER_NICE)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        if message[0] == "job":
            reply = run_job(conn, message[1])
            try:
                conn.send(reply)
            except OSError:
                return
        # rate/cancel messages that arrive between jobs are stale: ignore them


class _Control:
    """Reads rate and cancel messages from the parent, at most every 20 ms."""

    def __init__(self, conn: Connection, throttle: TokenBucket) -> None:
        self.conn = conn
        self.throttle = throttle
        self.cancelled = False
        #: ``finish`` received (action=stop): the cut ends its file at the next packet.
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
                    if message[0] == "cancel":
                        self.cancelled = True
                    elif message[0] == "finish":
                        self.finishing = True
                    elif message[0] == "rate":
                        self.throttle.set_rate(message[1])
                    elif message[0] == "segments":
                        self.feed.add(message[1], message[2])
            except (EOFError, OSError):  # the server died: stop, the cut deletes its temp file
                self.cancelled = True
        return self.cancelled


def run_job(conn: Connection, payload: dict[str, Any]) -> tuple[Any, ...]:
    """Cut one device range; returns the final message for the parent."""
    throttle = TokenBucket(payload.get("bandwidth_kbps", 0))
    control = _Control(conn, throttle)

    def progress(done_us: int, size_bytes: int) -> None:
        conn.send(("progress", done_us, size_bytes))

    options = ExportOptions.from_json(payload.get("options"))
    try:
        if options.snapshot:
            return ("done", write_snapshot(payload, options))
        request = CutRequest(
            segments=tuple(SourceSegment(**s) for s in payload["segments"]),
            start_us=payload["start_us"], end_us=payload["end_us"],
            out_path=payload["out_path"], fmt=payload["fmt"],
            title=payload.get("title", ""), comment=payload.get("comment", ""),
            audio=options.audio, subtitles=options.timestamps == "subtitle",
        )
        if cut_while_recording(options.live, options.render is not None, request.subtitles,
                   request.end_us):  # cut while the recording grows (media/follow.py)
            control.feed.add(payload["segments"], False)
            result = follow_cut(request, control.feed, control.should_stop, throttle=throttle,
                                on_progress=progress, should_finish=lambda: control.finishing)
        elif options.render is not None:
            result = render_job(request, options.render, throttle, progress, control.should_stop)
        elif options.maxfilesize_mb and not request.subtitles:  # split while cutting
            result, parts = cut_parts(
                request, options.maxfilesize_bytes, device_id=payload.get("device_id", 0),
                throttle=throttle, on_progress=progress, should_stop=control.should_stop,
                should_finish=lambda: control.finishing)
            return ("done", {**asdict(result), **({"parts": parts} if parts else {})})
        else:
            result = cut(request, throttle=throttle, on_progress=progress,
                         should_stop=control.should_stop, should_finish=lambda: control.finishing)
        facts = asdict(result)
        if options.maxfilesize_mb and result.size_bytes > options.maxfilesize_bytes:
            # rendered or with a subtitle track: cut whole, then split (two passes)
            facts["parts"] = _split(request, result, options, payload, control)
    except CutCancelled:
        return ("cancelled",)
    except SenseError as exc:
        return ("failed", int(exc.code), exc.description)
    except MediaError as exc:
        return ("failed", int(ResultCode.GENERAL_ERROR), f"cannot cut the recording: {exc}")
    except Exception:
        # The parent logs the traceback under the incident id the description repeats.
        incident = uuid.uuid4().hex[:12]
        return ("failed", int(ResultCode.GENERAL_ERROR),
                f"unexpected failure while cutting; reported as incident {incident}",
                traceback.format_exc())
    return ("done", facts)


def render_job(request: CutRequest, render_options: RenderOptions, throttle: TokenBucket,
               progress: Callable[[int, int], None], should_stop: Callable[[], bool]) -> CutResult:
    """The ``<render>`` path: decode, filter, encode (evidence/run.py), same contract as cut."""
    metadata = {k: v for k, v in (("title", request.title), ("comment", request.comment)) if v}
    return render(RenderRequest(request.segments, request.start_us, request.end_us,
                                request.out_path, request.fmt, render_options, metadata,
                                subtitles=request.subtitles),
                  throttle=throttle, on_progress=progress, should_stop=should_stop)


def _split(request: CutRequest, result: CutResult, options: ExportOptions,
           payload: dict[str, Any], control: _Control) -> list[dict[str, Any]]:
    """The parts of the finished cut; the whole file is deleted either way."""
    try:
        return split_file(request.out_path, result, request.fmt, options.maxfilesize_bytes,
                          payload["title"], payload.get("device_id", 0), request.title,
                          request.comment, control.should_stop)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(request.out_path)
