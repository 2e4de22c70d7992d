"""Configuration: the shipped defaults load, and bad files name file, key and problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sense_plugin.config import (
    PACKAGED_DEFAULT,
    config_from_dict,
    default_config_path,
    load_config,
)
from sense_plugin.errors import ConfigError

MINIMAL = {"server": {"serverid": "1"}}


def test_the_packaged_default_is_the_only_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_config_path() == PACKAGED_DEFAULT
    root = Path(__file__).resolve().parents[1]
    candidates = [*(root / "config").glob("*.toml"), *(root / "sense_plugin").rglob("*.toml")]
    others = [p for p in candidates
              if p.name.startswith("default") and p.resolve() != PACKAGED_DEFAULT.resolve()]
    assert not others, f"a second default configuration: {others}"
    monkeypatch.chdir(tmp_path)  # its relative paths resolve against the working directory
    config = load_config(PACKAGED_DEFAULT)
    assert config.server.data_dir == tmp_path / "sense-data"
    assert config.server.export_roots == (config.server.data_dir / "exports",)
    assert [d.name for d in config.devices] == ["Entrance", "Parking", "Lobby"]


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "c.toml"
    path.parent.mkdir()
    path.write_text('[server]\nserverid = "5"\ndata_dir = "../d"\n[[devices]]\ndeviceid = "7"\n')
    config = load_config(path)
    assert config.server.data_dir == tmp_path / "d"
    assert config.devices[0].archive_dir == tmp_path / "d" / "archive" / "7"


@pytest.mark.parametrize(("data", "message"), [
    ({}, "missing key 'serverid'"),
    ({"server": {"serverid": "-1"}}, "serverid"),
    ({**MINIMAL, "http": {"port": 70000}}, r"\[http\] port"),
    ({**MINIMAL, "export": {"max_concurrent_jobs": "two"}}, "max_concurrent_jobs"),
    ({**MINIMAL, "export": {"max_concurent_jobs": 2}}, "unknown key 'max_concurent_jobs'"),
    ({**MINIMAL, "auth": {"enabled": True}}, "no users"),
    ({**MINIMAL, "http": {"host": "0.0.0.0"}}, "only on loopback"),
    ({**MINIMAL, "devices": [{"deviceid": "1"}, {"deviceid": "1"}]}, "unique"),
    ({**MINIMAL, "auth": {"users": [{"name": "a", "password_hash": "plain"}]}}, "hash-password"),
    ({**MINIMAL, "auth": {"users": [{"password_hash": "scrypt$x"}]}}, "missing key 'name'"),
    ({**MINIMAL, "auth": {"users": [{"name": "a", "password_hash": "scrypt$x",
                                     "permissions": ["root"]}]}}, "unknown permission"),
])
def test_bad_config_names_the_problem(tmp_path: Path, data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data, base_dir=tmp_path, source="site.toml")


def test_bad_config_file_exits_nonzero_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\n")
    result = subprocess.run([sys.executable, "-m", "sense_plugin", "serve", "--config", str(path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "broken.toml" in result.stderr and "TOML" in result.stderr


def test_hash_password_command_reads_stdin() -> None:
    result = subprocess.run([sys.executable, "-m", "sense_plugin", "hash-password"],
                            input="s3cret\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    from sense_plugin.passwords import verify_password
    assert verify_password("s3cret", result.stdout.strip())


def test_archive_naming_and_rescan_keys(tmp_path: Path) -> None:
    base = {"server": {"serverid": "1"}}
    config = config_from_dict({**base, "archive": {"rescan_s": 2, "manage_foreign": True},
                               "devices": [
        {"deviceid": "5"},
        {"deviceid": "6", "archive_dir": "ffmpeg", "archive_timezone": "Europe/Berlin"},
        {"deviceid": "7", "archive_pattern": "cam_%Y%m%d-%H%M%S.{ext}"},
        {"deviceid": "8", "archive_dir": "rec", "source": "rtsp://cam/1"},
    ]}, base_dir=tmp_path)
    assert (config.archive.rescan_s, config.archive.manage_foreign) == (2.0, True)
    first = config.devices[0]
    assert (first.archive_pattern, first.archive_timezone) == ("%Y%m%dT%H%M%S.%fZ.{ext}", "UTC")
    assert [d.archive_foreign for d in config.devices] == [False, True, True, False]
    assert config.devices[1].archive_timezone == "Europe/Berlin"
    for archive, problem in (({"rescan_s": 0}, "rescan_s"),
                             ({"manage_foreign": "yes"}, "manage_foreign")):
        with pytest.raises(ConfigError, match=problem):
            config_from_dict({**base, "archive": archive}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"\(deviceid 5\) archive_pattern: '%Y\.\{ext\}' has no"):
        config_from_dict({**base, "devices": [{"deviceid": "5", "archive_pattern": "%Y.{ext}"}]},
                         base_dir=tmp_path)


def test_a_recorded_device_keeps_our_naming(tmp_path: Path) -> None:
    device = {"deviceid": "5", "source": "rtsp://cam/1", "archive_timezone": "Europe/Berlin"}
    with pytest.raises(ConfigError, match=r"\(deviceid 5\) archive_pattern: a device with a "
                                          r"source is recorded by this server"):
        config_from_dict({"server": {"serverid": "1"}, "devices": [device]}, base_dir=tmp_path)
