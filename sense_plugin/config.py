"""Load and validate the TOML configuration once into frozen dataclasses (docs/configuration.rst).

The dataclasses (and the keys' defaults) live in ``configmodel``, the typed reading in
``configread`` and ``configtables``; all are re-exported here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sense_plugin.configmodel import (
    ArchiveConfig,
    AuthConfig,
    ClusterConfig,
    Config,
    DeviceConfig,
    EvidenceConfig,
    ExportConfig,
    HttpConfig,
    ServerConfig,
    UserConfig,
)
from sense_plugin.configtables import ConfigReader, is_loopback
from sense_plugin.errors import ConfigError

__all__ = [
    "ArchiveConfig",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "DeviceConfig",
    "EvidenceConfig",
    "ExportConfig",
    "HttpConfig",
    "ServerConfig",
    "UserConfig",
    "default_config_path",
    "load_config",
    "config_from_dict",
    "is_loopback",
]

#: The shipped default configuration: the only one, packaged with the code (a checkout and
#: an install read the same file).
PACKAGED_DEFAULT = Path(__file__).with_name("defaults") / "default.toml"


def default_config_path() -> Path:
    """The file ``serve`` uses without ``--config``: the packaged default."""
    return PACKAGED_DEFAULT


def load_config(path: Path, *, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, validate and freeze the configuration file at ``path``.

    ``overrides`` maps dotted keys (``http.host``, ``server.data_dir``) to values that
    replace the file's. Relative paths resolve against the file's directory, except for the
    packaged default, whose relative paths resolve against the working directory.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base_dir = Path.cwd() if path.resolve() == PACKAGED_DEFAULT.resolve() else path.parent
    return config_from_dict(data, base_dir=base_dir, source=str(path), overrides=overrides)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    source: str = "<config>",
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Validate an already parsed TOML document (also used by tests)."""
    merged = _apply_overrides(data, overrides or {})
    return ConfigReader(source, base_dir.resolve()).config(merged)


def _apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        key: (dict(val) if isinstance(val, Mapping) else val) for key, val in data.items()
    }
    for dotted, value in overrides.items():
        if value is None:
            continue
        table, key = dotted.split(".", 1)
        merged.setdefault(table, {})[key] = value
    return merged
