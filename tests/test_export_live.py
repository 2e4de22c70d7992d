"""A live export over the real server (``sense-plugin serve``) recording the live demo camera."""

from __future__ import annotations

import time
from pathlib import Path

import av

from sense_plugin.testing.serverprocess import ServerProcess
from sense_plugin.timestamps import format_timestamp, now_us, parse_timestamp

DEVICE = "9890179877273119875"
CONFIG = """
[server]
serverid = "7015498111931795223"
data_dir = "data"
[archive]
demo = true
demo_minutes = 0.2
"""


def status(server: ServerProcess, export_id: str) -> dict[str, str]:
    export = server.command(f"getExportVideoStatus&exportid={export_id}").find("exports/export")
    device = export.find("devices/device")
    return {"status": export.findtext("status") or "", "mode": export.findtext("mode") or "",
            "progress": device.findtext("progress") or "", "stopped":
            device.findtext("stopped") or "", "file": device.findtext("files/file/name") or "",
            "path": export.findtext("path") or "", "endtime": device.findtext("endtime") or ""}


def test_live_export_follows_the_recording_until_stopped(tmp_path: Path) -> None:
    config = tmp_path / "sense.toml"
    config.write_text(CONFIG)
    server = ServerProcess(config, tmp_path / "server.log")
    server.start()
    try:
        start_us = now_us() - 1_000_000
        body = (f"<export><devices><device><deviceid>{DEVICE}</deviceid><starttime>"
                f"{format_timestamp(start_us)}</starttime></device></devices>"
                "<mode>live</mode><keepalive>0</keepalive></export>").encode()
        export_id = server.command("exportVideo", body).findtext("exportid") or ""
        first = status(server, export_id)
        assert first["status"] == "SYNCING" and first["mode"] == "live"
        time.sleep(4)
        assert int(status(server, export_id)["progress"]) >= 0
        stop_us = now_us()
        changed = server.command(f"exportVideo&action=stop&exportid={export_id}")
        assert changed.findtext("status") == "COMPLETED", server.log_path.read_text()[-3000:]
        final = status(server, export_id)
        assert final["stopped"] == "true" and final["file"]
        assert abs(parse_timestamp(final["endtime"]) - stop_us) < 1_000_000
        path = tmp_path / "data" / "exports" / "unnamed" / export_id / final["file"]
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            times = [int(f.pts * video.time_base * 1_000_000) for f in container.decode(video)]
        covered_us = times[-1] - times[0]
        # start..stop: from the keyframe at or before the start to what the recorder had
        # written when the stop came (its open segment is readable a fragment, one GOP, at a
        # time, and a loaded machine adds its write latency)
        assert stop_us - start_us - 2_000_000 <= covered_us <= stop_us - start_us + 3_000_000
    finally:
        server.stop()
