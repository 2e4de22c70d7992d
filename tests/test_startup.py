"""What ``serve`` logs as it starts (sense_plugin/startup.py)."""

from __future__ import annotations

from pathlib import Path

from sense_plugin.config import config_from_dict
from sense_plugin.startup import base_url, redact, startup_lines


def test_startup_lines_name_the_page_files_and_devices(tmp_path: Path) -> None:
    config = config_from_dict({
        "server": {"serverid": "1", "data_dir": "data"},
        "http": {"host": "::1", "port": 9090},
        "devices": [
            {"deviceid": "5", "name": "Door", "source": "rtsp://admin:hunter2@cam.local:554/s1"},
            {"deviceid": "6", "name": "Yard"},
            {"deviceid": "7", "name": "Shed", "enabled": False},
        ],
    }, base_dir=tmp_path, source="site.toml")
    assert base_url(config) == "http://[::1]:9090/"
    lines = startup_lines(config)
    assert lines[0] == "sense_plugin 0.1.0 starting on http://[::1]:9090/"
    assert lines[1] == (f"configuration site.toml; data in {tmp_path / 'data'}; "
                        f"exports in {tmp_path / 'data' / 'exports'}")
    assert lines[2] == "authentication off (loopback only)"
    assert lines[3:] == [
        "device Door (5): recorded from rtsp://admin:***@cam.local:554/s1",
        "device Yard (6): live demo (synthetic source)",
        "device Shed (7): live demo (synthetic source), disabled",
    ]
    assert "hunter2" not in "\n".join(lines)


def test_demo_devices_are_announced(tmp_path: Path) -> None:
    config = config_from_dict({"server": {"serverid": "1"}, "archive": {"demo": False},
                               "devices": [{"deviceid": "5", "name": "Door"}]},
                              base_dir=tmp_path)
    assert startup_lines(config)[3] == (
        f"device Door (5): archive only ({tmp_path / 'sense-data' / 'archive' / '5'})")
    added = config_from_dict({"server": {"serverid": "1"}}, base_dir=tmp_path)
    assert ("no [[devices]] configured: added 3 demo devices (Entrance, Parking, Lobby)"
            in startup_lines(added))


def test_redact_leaves_urls_without_password_alone() -> None:
    assert redact("rtsp://cam.local/s1") == "rtsp://cam.local/s1"
    assert redact("/srv/clip.mp4") == "/srv/clip.mp4"
    assert redact("http://u:p@h/x?y=1") == "http://u:***@h/x?y=1"
