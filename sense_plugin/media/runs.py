"""An export across a change of picture size or codec: one file per run of equal parameters.

A file has one video header, so a cut refuses to mix parameters
(:class:`~sense_plugin.errors.ParametersChangedError` from :mod:`outputs`). The recorder
starts a new segment at every change (docs/cameras.rst, *Resolution changes*), so a change
always lies between two segments: the range is cut again as consecutive runs of segments with
equal parameters, each run ending where the next one's first segment begins (no frame lost,
none twice). As with size-split parts, every run is written under a temporary name
(``<planned>.pNNN.part``) and all are given their final names once the last run is cut
(``..._part001.mp4``, ``..._part002.mp4``: they sort in time order), never over an existing
file; they are listed in that order. Only exports that hit a change pay for probing their
segments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import av

from sense_plugin.media import bitstream as bs
from sense_plugin.media.cutspec import (
    CutRequest,
    CutResult,
    PartFile,
    SourceRange,
    SourceSegment,
)
from sense_plugin.media.remux import cut
from sense_plugin.outputpaths import part_name, part_temporary
from sense_plugin.safefs import rename_all_exclusive

log = logging.getLogger(__name__)

Params = tuple[str, int, int]


def segment_params(segment: SourceSegment) -> Params | None:
    """Codec name, width and height of a segment's video (None: unreadable, left to the cut)."""
    try:
        with av.open(segment.path, timeout=10.0) as container:
            return bs.params(container.streams.video[0])
    except (av.FFmpegError, OSError, IndexError):
        return None


def split_runs(request: CutRequest) -> list[tuple[CutRequest, Params | None]]:
    """The request as consecutive cuts over runs of segments with equal parameters, each with
    its parameters."""
    source = request.source
    inside = [s for s in source.segments if s.end_us > source.start_us]
    runs: list[list[SourceSegment]] = []
    kinds: list[Params | None] = []
    last: Params | None = None
    for segment in inside:
        params = segment_params(segment) or last
        if runs and params == last:
            runs[-1].append(segment)
        else:
            runs.append([segment])
            kinds.append(params)
        last = params
    keep = [i for i, run in enumerate(runs) if i == 0 or run[0].start_us < source.end_us]
    runs, kinds = [runs[i] for i in keep], [kinds[i] for i in keep]
    requests = []
    for number, run in enumerate(runs):
        start_us = source.start_us if number == 0 else run[0].start_us
        end_us = source.end_us if number + 1 == len(runs) else runs[number + 1][0].start_us
        requests.append((dataclasses.replace(
            request, source=SourceRange(tuple(run), start_us, min(end_us, source.end_us)),
            out_path=part_temporary(request.out_path, number + 1)), kinds[number]))
    return requests


def cut_runs(request: CutRequest, device_id: int, *,
             on_progress: Callable[[int, int], None] | None = None,
             **options: Any) -> tuple[list[PartFile], str]:
    """Cut each run into its own file: the files in order (as size-split parts), and a note
    for the job's status naming the runs."""
    done_us = done_bytes = 0
    written: list[PartFile] = []

    def progress(run_us: int, size_bytes: int) -> None:
        if on_progress is not None:
            on_progress(done_us + run_us, done_bytes + size_bytes)

    runs = split_runs(request)
    try:
        for run, _ in runs:
            result = cut(run, on_progress=progress, **options)
            written.append(_part(run, result))
            done_us += run.source.end_us - run.source.start_us
            done_bytes += result.size_bytes
    except BaseException:
        for part in written:
            _unlink(part.path)
        raise
    written = _name(written, request, device_id)
    kinds = ", ".join("unknown" if p is None else f"{p[0]} {p[1]}x{p[2]}" for _, p in runs)
    note = f"the video changes inside the range: one file per run ({kinds})"
    log.info("export of %s: %s", request.title or device_id, note)
    return written, note


def _part(run: CutRequest, result: CutResult) -> PartFile:
    return PartFile(run.out_path, result.size_bytes, result.sha256, result.file_dev,
                    result.file_ino, result.first_frame_us, result.last_frame_us,
                    result.frame_count, gaps=result.gaps)


def _name(written: list[PartFile], request: CutRequest, device_id: int) -> list[PartFile]:
    """Every run's file under its final name, all or none, never over an existing file (a
    taken name fails with -18 and deletes this device's files, as for size-split parts)."""
    directory = os.path.dirname(request.out_path)
    named = [dataclasses.replace(part, path=os.path.join(directory, part_name(
        request.title, device_id, part.first_frame_us, request.fmt, number)))
        for number, part in enumerate(written, 1)]
    rename_all_exclusive([(t.path, f.path) for t, f in zip(written, named, strict=True)])
    return named


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
