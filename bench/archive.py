"""Benchmark archive: built once into bench/cache/ with ``sense-plugin demo-archive``.

Two cameras, 1920x1080, 25 fps, 4 Mbit/s H.264, a keyframe every 2 s, 10 s segments. Camera
``LONG`` has 60 minutes (for the memory run), camera ``SHORT`` has 10 minutes. Both share one
data directory and one index; each is generated with its own small config so that one
``demo-archive`` run does not clear the other camera's segments.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / "cache"
DATA_DIR = CACHE_DIR / "data"
STAMP = CACHE_DIR / "archive.json"

LONG_ID = 9890179877273119001
SHORT_ID = 9890179877273119002
SPEC = {"size": "1920x1080", "fps": 25, "bitrate": 4_000_000, "segment_seconds": 10,
        "gop_seconds": 2}
MINUTES = {LONG_ID: 60, SHORT_ID: 10}


@dataclass(frozen=True)
class Archive:
    """What the benchmarks need to know about the cached archive."""

    data_dir: Path
    config: Path
    ranges_us: dict[int, tuple[int, int]]
    build_s: float
    recipe: dict


def _config_text(devices: list[int], *, demo_dir: Path, extra: str = "") -> str:
    lines = [
        "[server]", 'serverid = "7015498111931795223"', 'name = "bench"',
        f'data_dir = "{demo_dir}"', "",
        "[archive]", "demo = false", "max_age_days = 3650", "",
        "[export]", "max_concurrent_jobs = 2", "max_queued_jobs = 100000",
        "export_retention_hours = 10000", "history_days = 3650", "",
    ]
    lines.append(extra)
    for device_id in devices:
        lines += ["[[devices]]", f'deviceid = "{device_id}"',
                  f'name = "cam {device_id % 1000}"', ""]
    return "\n".join(lines)


def write_configs() -> Path:
    """Write the server config (both cameras) and one generator config per camera."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    server = CACHE_DIR / "server.toml"
    server.write_text(_config_text([LONG_ID, SHORT_ID], demo_dir=DATA_DIR))
    for device_id in MINUTES:
        (CACHE_DIR / f"gen-{device_id}.toml").write_text(
            _config_text([device_id], demo_dir=DATA_DIR))
    return server


def recorded_ranges(data_dir: Path) -> dict[int, tuple[int, int]]:
    """First start and last end per device, read from the archive index."""
    db = sqlite3.connect(data_dir / "archive.sqlite3")
    try:
        rows = db.execute("SELECT device_id, MIN(start_us), MAX(end_us) FROM segments "
                          "WHERE state = 'complete' GROUP BY device_id").fetchall()
    finally:
        db.close()
    return {int(dev): (int(lo), int(hi)) for dev, lo, hi in rows}


def _demo_archive(config: Path, devices: int, minutes: float) -> None:
    subprocess.run(
        [sys.executable, "-m", "sense_plugin", "demo-archive", "--config", str(config),
         "--data-dir", str(DATA_DIR), "--devices", str(devices), "--minutes", str(minutes),
         "--size", SPEC["size"], "--fps", str(SPEC["fps"]), "--bitrate", str(SPEC["bitrate"]),
         "--segment-seconds", str(SPEC["segment_seconds"]),
         "--gop-seconds", str(SPEC["gop_seconds"])],
        check=True)


def ensure_archive(mode: str = "tiled", unique_minutes: float = 10, log=print) -> Archive:
    """Return the cached archive, generating it first when missing or built differently.

    ``full``: every minute encoded by ``sense-plugin demo-archive`` (60 + 10 minutes of 1080p).
    ``tiled``: ``demo-archive`` encodes ``unique_minutes`` per camera, then earlier copies are
    added by :mod:`bench.tile` (stream copy with file name and ``creation_time`` rewritten, then
    probed and indexed like any segment): same codec, bitrate, GOP and segment structure, but the
    burned-in clock of the copies shows the time of the original.
    """
    server = write_configs()
    wanted = {"spec": SPEC, "minutes": {str(k): v for k, v in MINUTES.items()}, "mode": mode,
              "unique_minutes": unique_minutes if mode == "tiled" else None}
    if STAMP.exists():
        stamp = json.loads(STAMP.read_text())
        if stamp.get("wanted") == wanted:
            ranges = recorded_ranges(DATA_DIR)
            if all(ranges.get(d, (0, 0))[1] - ranges.get(d, (0, 0))[0]
                   >= MINUTES[d] * 60_000_000 - 1_000_000 for d in MINUTES):
                log(f"archive: cached in {DATA_DIR} ({mode}, built in {stamp['build_s']:.0f} s)")
                return Archive(DATA_DIR, server, ranges, float(stamp["build_s"]), wanted)
    STAMP.unlink(missing_ok=True)
    started = time.monotonic()
    if mode == "full":
        for device_id, minutes in MINUTES.items():
            log(f"archive: encoding {minutes} min of {SPEC['size']}@{SPEC['fps']} for {device_id}")
            _demo_archive(CACHE_DIR / f"gen-{device_id}.toml", 1, minutes)
    elif mode == "tiled":
        from bench.tile import tile_device

        log(f"archive: encoding {unique_minutes} min of {SPEC['size']}@{SPEC['fps']} "
            f"for {len(MINUTES)} cameras")
        _demo_archive(server, len(MINUTES), unique_minutes)
        encoded_s = time.monotonic() - started
        log(f"archive: encoded in {encoded_s:.0f} s "
            f"({len(MINUTES) * unique_minutes * 60 / encoded_s:.1f}x realtime on all cores)")
        for device_id, minutes in MINUTES.items():
            added = tile_device(DATA_DIR, device_id, minutes * 60_000_000)
            log(f"archive: {device_id}: {added} tiled segments added")
    else:
        raise ValueError(f"unknown archive mode {mode!r}")
    build_s = time.monotonic() - started
    log(f"archive: built in {build_s:.0f} s")
    STAMP.write_text(json.dumps({"wanted": wanted, "build_s": build_s}, indent=1))
    return Archive(DATA_DIR, server, recorded_ranges(DATA_DIR), build_s, wanted)


if __name__ == "__main__":
    print(ensure_archive())
