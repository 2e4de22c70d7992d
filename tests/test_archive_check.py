"""Diagnostics and ownership of imported archives: archive-check, config errors at start, the
-9 hint, and retention that leaves foreign archives alone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiclient import command, export_body, wait_export
from ffmpegtools import ffmpeg_segments

from sense_plugin.archive.service import Archive
from sense_plugin.cli import main
from sense_plugin.config import config_from_dict
from sense_plugin.naming import NamePattern
from sense_plugin.timestamps import format_timestamp, now_us

DEV = 9890179877273119875
S = 1_000_000
PATTERN = "cam_%Y%m%d-%H%M%S.{ext}"


def write_toml(path: Path, archive_dir: Path, pattern: str = PATTERN,
               extra: str = "") -> Path:
    path.write_text(f"""
[server]
serverid = "1"
data_dir = "data"
[archive]
demo = false
{extra}
[[devices]]
deviceid = "{DEV}"
name = "Gate"
archive_dir = "{archive_dir}"
archive_pattern = "{pattern}"
""")
    return path


def foreign_archive(tmp_path: Path, start_us: int) -> Path:
    """Two good ffmpeg segments plus a misnamed, an empty and a truncated file."""
    root = tmp_path / "foreign"
    root.mkdir()
    pattern = NamePattern(PATTERN)
    segments = ffmpeg_segments(tmp_path / "ff", 2, "mp4")
    for i, segment in enumerate(segments):
        segment.replace(root / pattern.format(start_us + i * S, "mp4"))
    good = root / pattern.format(start_us, "mp4")
    (root / "Gate 2026-11-20 10.00.mp4").write_bytes(good.read_bytes())
    (root / pattern.format(start_us + 10 * S, "mp4")).touch()
    (root / pattern.format(start_us + 20 * S, "MP4")).write_bytes(good.read_bytes()[:2000])
    an_hour_ago = time.time() - 3600  # an existing archive: nothing is being written
    for path in root.iterdir():
        os.utime(path, (an_hour_ago, an_hour_ago))
    return root


def test_archive_check_lists_skipped_files(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    t0 = 1_795_168_800_000_000
    root = foreign_archive(tmp_path, t0)
    config = write_toml(tmp_path / "site.toml", root)
    assert main(["archive-check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"device {DEV} 'Gate'" in out and "(imported, read-only)" in out
    assert "indexed 2 segments, 2026-11-20 10:00:00.000 .. 2026-11-20 10:00:02.000" in out
    assert "skipped 3 file(s)" in out
    assert f"SKIPPED {root / 'Gate 2026-11-20 10.00.mp4'}: name does not match " \
           f"archive_pattern '{PATTERN}'" in out
    assert "cam_20261120-100010.mp4: empty file" in out
    assert "cam_20261120-100020.MP4: unreadable" in out
    assert "archive-check: FAILED (3 files skipped)" in out
    for path in list(root.iterdir()):  # only the good ones left: exit 0
        if "Gate" in path.name or path.stat().st_size < 3000:
            path.unlink()
    assert main(["archive-check", "--config", str(config), "--device", str(DEV)]) == 0
    assert "PASSED (0 files skipped)" in capsys.readouterr().out
    assert main(["archive-check", "--config", str(config), "--device", "42"]) == 2


@pytest.mark.parametrize(("pattern", "message"), [
    ("cam_%Y%m%d-%H%M%Q.{ext}", "unknown field '%Q'"),
    ("camera.{ext}", "has no %Y %m %d %H field"),
])
@pytest.mark.parametrize("subcommand", ["serve", "archive-check"])
def test_bad_pattern_is_a_config_error_naming_device_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str, message: str,
        subcommand: str) -> None:
    config = write_toml(tmp_path / "bad.toml", tmp_path / "x", pattern)
    assert main([subcommand, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"[[devices]] #1 (deviceid {DEV}) archive_pattern" in err and message in err


def test_bad_timezone_is_a_config_error(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_toml(tmp_path / "bad.toml", tmp_path / "x")
    config.write_text(config.read_text() + 'archive_timezone = "Europe/Atlantis"\n')
    assert main(["archive-check", "--config", str(config)]) == 2
    assert "archive_timezone: unknown time zone 'Europe/Atlantis'" in capsys.readouterr().err


async def test_no_record_answer_says_files_were_skipped(
        tmp_path: Path, make_client: Callable[..., Any]) -> None:
    start_us = (now_us() // S - 600) * S
    root = tmp_path / "misnamed"
    root.mkdir()
    for i, segment in enumerate(ffmpeg_segments(tmp_path / "ff", 2, "mp4")):
        segment.replace(root / f"cam_{i}.mp4")  # ffmpeg's numbering, no time in the name
    data = {"server": {"serverid": "1", "data_dir": "data"}, "archive": {"demo": False},
            "devices": [{"deviceid": str(DEV), "name": "Gate", "archive_dir": str(root),
                         "archive_pattern": PATTERN}]}
    client = await make_client(config_from_dict(data, base_dir=tmp_path))
    body = export_body([(DEV, format_timestamp(start_us), format_timestamp(start_us + 60 * S))])
    export_id = (await command(client, "exportVideo", body=body)).findtext("exportid")
    device = (await wait_export(client, int(export_id))).find("devices/device")
    assert device.findtext("errorcode") == "-9"
    description = device.findtext("description")
    assert "2 file(s) in the device's archive were skipped" in description
    assert f"archive_pattern '{PATTERN}'" in description
    assert f"sense-plugin archive-check --device {DEV}" in description


@pytest.mark.parametrize("manage_foreign", [False, True])
async def test_retention_leaves_imported_archives_alone(
        tmp_path: Path, manage_foreign: bool) -> None:
    old_us = now_us() - 40 * 86_400 * S
    root = tmp_path / "imported"
    root.mkdir()
    pattern = NamePattern(PATTERN)
    files = [segment.replace(root / pattern.format(old_us + i * S, "mp4"))
             for i, segment in enumerate(ffmpeg_segments(tmp_path / "ff", 2, "mp4"))]
    data = {"server": {"serverid": "1", "data_dir": "data"},
            "archive": {"demo": False, "max_age_days": 30, "manage_foreign": manage_foreign},
            "devices": [{"deviceid": str(DEV), "name": "Gate", "archive_dir": str(root),
                         "archive_pattern": PATTERN}]}
    config = config_from_dict(data, base_dir=tmp_path)
    assert config.devices[0].archive_foreign
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        archive = Archive(config, executor, retention_interval_s=0.05)
        await archive.start()
        try:
            assert len(await archive.segments(DEV, 0, now_us())) == 2
            for _ in range(40):  # several retention passes
                await asyncio.sleep(0.05)
                if not any(f.exists() for f in files):
                    break
        finally:
            await archive.close()
    assert all(f.exists() for f in files) is not manage_foreign


async def test_the_demo_never_writes_into_an_imported_archive(tmp_path: Path) -> None:
    from sense_plugin.archive.demo_archive import DemoSpec

    root = tmp_path / "imported"
    root.mkdir()
    (root / "notes.txt").write_text("someone else's folder")
    data = {"server": {"serverid": "1", "data_dir": "data"}, "archive": {"demo": True},
            "devices": [{"deviceid": "11", "name": "Ours"},
                        {"deviceid": "12", "name": "Theirs", "archive_dir": str(root),
                         "archive_pattern": PATTERN}]}
    config = config_from_dict(data, base_dir=tmp_path)
    spec = DemoSpec(minutes=0.2, width=64, height=64, fps=10, bitrate_bps=50_000,
                    segment_s=6.0, gop_s=1.0)
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        archive = Archive(config, executor, demo_spec=spec)
        await archive.start()
        try:
            await asyncio.wait_for(archive.demo_ready.wait(), 60)
            assert await archive.recorded_range(11) is not None
            assert await archive.recorded_range(12) is None
        finally:
            await archive.close()
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("close_at_once", [False, True])
async def test_a_long_first_reconcile_finishes_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        close_at_once: bool) -> None:
    """A large archive: start() does not wait for the whole first reconcile (here: none)."""
    from sense_plugin.archive import service

    monkeypatch.setattr(service, "STARTUP_WAIT_S", 0.0)
    t0 = 1_795_168_800_000_000
    root = tmp_path / "big"
    root.mkdir()
    pattern = NamePattern(PATTERN)
    for i, segment in enumerate(ffmpeg_segments(tmp_path / "ff", 20, "mp4")):
        segment.replace(root / pattern.format(t0 + i * S, "mp4"))
    data = {"server": {"serverid": "1", "data_dir": "data"}, "archive": {"demo": False},
            "devices": [{"deviceid": str(DEV), "name": "Gate", "archive_dir": str(root),
                         "archive_pattern": PATTERN}]}
    config = config_from_dict(data, base_dir=tmp_path)
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        archive = Archive(config, executor)
        await archive.start()
        assert "still being brought up to date" in caplog.text
        try:
            if not close_at_once:
                await asyncio.wait_for(archive.demo_ready.wait(), 30)  # set once it is done
                assert await archive.recorded_range(DEV) == (t0, t0 + 20 * S)
        finally:
            began = time.monotonic()
            await archive.close()
            assert time.monotonic() - began < 5  # the reconcile stops at the next file
    assert "Traceback" not in caplog.text and "ERROR" not in caplog.text
