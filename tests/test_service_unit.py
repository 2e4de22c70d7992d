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


def install_steps() -> list[str]:
    """The install commands in the unit's header comment, as an operator runs them."""
    return [line[1:].strip() for line in UNIT.read_text().splitlines()
            if line.startswith("#   ")]


def test_documentation_names_what_the_install_steps_install() -> None:
    """Every ``Documentation=`` file is one the header's ``install -t DIR FILES`` steps put
    there, from files of the checkout."""
    installed: set[str] = set()
    for step in install_steps():
        words = step.split()
        if words[0] == "install" and "-t" in words:
            target = words[words.index("-t") + 1]
            for pattern in words[words.index("-t") + 2:]:
                installed |= {f"{target}/{p.name}" for p in ROOT.glob(pattern)}
    documents = unit_options()["Unit"]["Documentation"].split()
    assert documents
    for uri in documents:
        assert uri.startswith("file://") and uri.removeprefix("file://") in installed, \
            (uri, sorted(installed))


def test_the_sample_configuration_needs_an_id_of_its_own(tmp_path: Path) -> None:
    """The sample does not start with the demo's server id; the install step gives it one."""
    from sense_plugin.errors import ConfigError

    sample = (ROOT / "config" / "sense-plugin.toml").read_text()
    default = (ROOT / "sense_plugin" / "defaults" / "default.toml").read_text()
    demo_id = next(line for line in default.splitlines() if line.startswith("serverid"))
    assert demo_id not in sample
    with pytest.raises(ConfigError, match="serverid"):
        load_config(ROOT / "config" / "sense-plugin.toml")
    sed = next(step for step in install_steps() if step.startswith("sed "))
    installed = tmp_path / "sense-plugin.toml"
    installed.write_text(sample)
    command = sed.replace("/etc/sense-plugin/sense-plugin.toml", str(installed))
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    first = load_config(installed).server.server_id
    installed.write_text(sample)
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    assert load_config(installed).server.server_id != first


def test_service_configuration_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "config" / "sense-plugin.toml").read_text()
    installed = tmp_path / "sense-plugin.toml"
    installed.write_text(text.replace('"SET-A-RANDOM-64-BIT-NUMBER"', '"4711"'))
    config = load_config(installed)
    assert config.server.data_dir == Path("/var/lib/sense-plugin")
    assert config.server.export_roots == (Path("/var/lib/sense-plugin/exports"),)
    assert config.demo_devices_added  # no [[devices]] yet: the three demo cameras
