"""Run a rendered export into a hashing, paced sink under a temporary name (like ``remux.cut``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import av

from sense_plugin.media.cutspec import CutResult
from sense_plugin.media.remux import raise_translated
from sense_plugin.media.rendering import Renderer, RenderRequest
from sense_plugin.media.sink import HashingSink
from sense_plugin.media.throttle import TokenBucket
from sense_plugin.outputpaths import TEMP_SUFFIX
from sense_plugin.safefs import rename_exclusive

#: Output format → FFmpeg muxer and options. MP4 is a plain (not fragmented) file with its
#: index written at the end, so players read the duration from the header; ``faststart``
#: would need FFmpeg to reopen the file by name, which a paced, hashing sink cannot offer.
MUXERS: dict[str, tuple[str, dict[str, str]]] = {
    "mp4": ("mp4", {}),
    "mkv": ("matroska", {}),
    "ts": ("mpegts", {}),
}


def render(
    request: RenderRequest,
    *,
    throttle: TokenBucket | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_interval_s: float = 0.2,
    fsync: bool = True,
) -> CutResult:
    """Render ``request`` into ``request.out_path``; the same contract as ``remux.cut``."""
    if request.fmt not in MUXERS or request.source.end_us <= request.source.start_us:
        raise ValueError(f"bad render request: format {request.fmt!r}, empty or reversed range")
    muxer, options = MUXERS[request.fmt]
    stop, tmp, done = should_stop or (lambda: False), request.out_path + TEMP_SUFFIX, False
    try:
        with HashingSink(tmp, throttle=throttle, should_stop=stop, fsync=fsync,
                         hash_while_writing=request.fmt == "ts") as sink:
            with av.open(sink, "w", format=muxer, options=options) as output:
                output.metadata.update(request.metadata)
                renderer = Renderer(request, output, stop, on_progress, progress_interval_s,
                                    lambda: sink.bytes_written)
                renderer.run()
            sink.close()
        rename_exclusive(tmp, request.out_path)
        done = True
    except Exception as exc:  # one mapping for cuts and renders (first cause wins)
        raise_translated(exc, os.path.basename(request.out_path))
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    # st_dev/st_ino of the descriptor written and hashed: the runner's identity check.
    return renderer.result(sink.size_bytes, sink.sha256, sink.identity)
