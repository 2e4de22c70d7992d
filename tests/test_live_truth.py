"""The live demo through the real ``sense-plugin serve``, judged by the oracle (tests/oracle.py):
the recorder's files state their own start, a fresh start warns about none of them, the
back-fill meets the live recording without a hole, and an export ending now waits for its end."""

from __future__ import annotations

import json
import time
from pathlib import Path

from apiclient import export_body
from oracle import check_export, ffprobe_shown
from test_live_demo import IDS, wait_for, write_config

from sense_plugin.archive.backfill import MARKER_NAME
from sense_plugin.naming import parse_segment_filename
from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.timestamps import US_PER_S, format_timestamp, now_us

#: The demo's frame duration (10 fps).
FRAME_US = 100_000


def export(server: ServerProcess, start_us: int, end_us: int) -> object:
    """Export ``[start_us, end_us)`` of the first demo device; its final status."""
    body = export_body([(int(IDS[0]), format_timestamp(start_us), format_timestamp(end_us))])
    export_id = server.command("exportVideo", body.encode()).findtext("exportid")
    deadline = time.monotonic() + 60
    while True:
        status = server.command(f"getExportVideoStatus&exportid={export_id}").find(
            "exports/export")
        assert status is not None
        if status.findtext("status") in ("COMPLETED", "FAILED"):
            return status
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.2)


def live_segments(data: Path, device: str, after_us: int) -> list[Path]:
    return sorted(p for p in (data / "archive" / device).glob("*.mp4")
                  if (parse_segment_filename(p.name) or 0) >= after_us)


def test_fresh_start_recording_join_and_export_to_now(tmp_path: Path) -> None:
    server = ServerProcess(write_config(tmp_path, 0.5), tmp_path / "server.log")
    data = tmp_path / "data"
    began_us = now_us()
    server.start()
    problems: list[str] = []  # every finding, so that one run shows them all
    try:
        marker = data / MARKER_NAME
        wait_for(lambda: marker.exists() and json.loads(marker.read_text())["done"], 90,
                 "the back-fill")
        plan = json.loads(marker.read_text())
        live_starts_us = plan.get("ends_us") or [plan["end_us"]] * len(IDS)
        wait_for(lambda: all(live_segments(data, d, began_us) for d in IDS), 60,
                 "a closed live segment per device")
        time.sleep(4)  # now lies seconds into the segment being recorded
        # an export ending now: the segment being recorded is waited for
        end_us = now_us()
        status = export(server, end_us - 20 * US_PER_S, end_us)
        assert status.findtext("status") == "COMPLETED"
        (verdict,) = check_export(data, status, requested=(end_us - 20 * US_PER_S, end_us))
        if verdict.claim.gaps or end_us - verdict.frames_us[-1] > 2 * FRAME_US:
            problems.append(f"export to now: last frame {end_us - verdict.frames_us[-1]} µs "
                            f"before the end, gaps {verdict.claim.gaps}")
        # across the join of back-fill and live recording: no hole at all
        join_us = live_starts_us[0]
        status = export(server, join_us - 3 * US_PER_S, join_us + 3 * US_PER_S)
        (verdict,) = check_export(data, status,
                                  requested=(join_us - 3 * US_PER_S, join_us + 3 * US_PER_S))
        steps = [b - a for a, b in zip(verdict.frames_us, verdict.frames_us[1:], strict=False)]
        if max(steps) > FRAME_US * 3 // 2:
            problems.append(f"a hole of {max(steps) - FRAME_US} µs at the back-fill's end")
    finally:
        assert server.stop() == 0
    # each recorder file states the time of its first frame, and no start warns about them
    for device in IDS:
        for segment in live_segments(data, device, began_us):
            named_us = parse_segment_filename(segment.name)
            stated_us = ffprobe_shown(segment).creation_us
            assert stated_us is not None and named_us is not None
            if abs(stated_us - named_us) > 1_000:
                problems.append(f"{segment.name}: creation_time {stated_us - named_us} µs off")
    problems += [line for line in server.log_path.read_text().splitlines() if "WARNING" in line]
    assert problems == []
