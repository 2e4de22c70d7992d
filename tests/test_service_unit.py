"""The shipped systemd unit and its configuration: systemd accepts the unit, the hardening
options are there, and the configuration it names is valid."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from sense_plugin.config import load_config

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "config" / "sense-plugin.service"


def unit_options() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_unprivileged_and_hardened() -> None:
    service = unit_options()["Service"]
    assert service["User"] == "sense-plugin" and service["Restart"] == "on-failure"
    for key, expected in {"ProtectSystem": "strict", "NoNewPrivileges": "yes",
                          "PrivateTmp": "yes", "ProtectHome": "yes",
                          "ReadWritePaths": "/var/lib/sense-plugin",
                          "StateDirectory": "sense-plugin", "CapabilityBoundingSet": ""}.items():
        assert service[key] == expected, key
    assert "/etc/sense-plugin/sense-plugin.toml" in service["ExecStart"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    executable = shutil.which("sense-plugin")
    if analyze is None or executable is None:
        pytest.skip("needs systemd-analyze (apt-get install systemd) and an installed "
                    "sense-plugin (pip install .)")
    unit = tmp_path / "sense-plugin.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/sense-plugin", executable))
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True)
    exposure = security.stdout.strip().splitlines()[-1]
    print(exposure)
    assert " OK " in exposure or " SAFE " in exposure, security.stdout


def test_service_configuration_is_valid() -> None:
    config = load_config(ROOT / "config" / "sense-plugin.toml")
    assert config.server.data_dir == Path("/var/lib/sense-plugin")
    assert config.server.export_roots == (Path("/var/lib/sense-plugin/exports"),)
    assert config.demo_devices_added  # no [[devices]] yet: the three demo cameras
