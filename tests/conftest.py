"""Shared pytest fixtures; each section belongs to the module family named in its header."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.archive import demo

# ---------------------------------------------------------------------------------------------
# Media fixtures: tiny synthetic archives made with sense_plugin.archive.demo (real H.264).
# ---------------------------------------------------------------------------------------------

#: 2026-11-20 10:00:00 UTC, the start of every synthetic test archive.
MEDIA_T0_US = 1_795_168_800_000_000

#: Small and fast: 64x64 at 10 fps with a keyframe every second.
MEDIA_DEFAULTS: dict[str, Any] = {"width": 64, "height": 64, "fps": 10, "gop_frames": 10,
                                  "bitrate_bps": 100_000}

MakeSegments = Callable[..., list[Path]]


@pytest.fixture(scope="session")
def make_segments(tmp_path_factory: pytest.TempPathFactory) -> MakeSegments:
    """Factory: ``make_segments(start_us=..., end_us=..., segment_s=..., **demo options)``.

    Writes one device's consecutive segments with :func:`demo.generate_device` (defaults from
    ``MEDIA_DEFAULTS``, start ``MEDIA_T0_US``) into a fresh directory and returns their paths in
    time order. Identical calls share one archive for the whole session, so treat it read-only.
    """
    cache: dict[tuple[tuple[str, Any], ...], list[Path]] = {}

    def make(**options: Any) -> list[Path]:
        settings = {"name": "CAM", "start_us": MEDIA_T0_US, "segment_s": 2.0, **MEDIA_DEFAULTS,
                    **options}
        settings.setdefault("end_us", settings["start_us"] + 6_000_000)
        key = tuple(sorted(settings.items()))
        if key not in cache:
            directory = tmp_path_factory.mktemp("segments")
            cache[key] = demo.generate_device(directory, **settings)
        return cache[key]

    return make
