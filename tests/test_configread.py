"""Keys read from their dataclass fields: an absent key is the field's default, a number
outside the field's bounds is refused naming the table and key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from sense_plugin.config import config_from_dict
from sense_plugin.configmodel import (
    BOUNDS,
    ArchiveConfig,
    AuthConfig,
    ClusterConfig,
    ExportConfig,
    HttpConfig,
)
from sense_plugin.errors import ConfigError

MINIMAL = {"server": {"serverid": "1"}}
CLUSTER = {"database_url": "postgresql://u:p@127.0.0.1:5432/db", "node_url": "http://127.0.0.1:1",
           "site_secret": "s" * 16}
TABLES = {"http": HttpConfig, "auth": AuthConfig, "export": ExportConfig,
          "archive": ArchiveConfig, "cluster": ClusterConfig}


def test_absent_keys_take_the_field_defaults(tmp_path: Path) -> None:
    config = config_from_dict({**MINIMAL, "cluster": CLUSTER}, base_dir=tmp_path)
    assert config.http == HttpConfig()
    assert config.auth == AuthConfig()
    assert config.export == ExportConfig()
    assert config.archive == ArchiveConfig()
    assert config.cluster == ClusterConfig(**CLUSTER)
    assert config.server.name == "sense_plugin"
    assert all(d.enabled for d in config.devices)


BOUNDED = [(table, f.name, *f.metadata[BOUNDS]) for table, cls in TABLES.items()
           for f in fields(cls) if BOUNDS in f.metadata]


@pytest.mark.parametrize(("table", "key", "minimum", "maximum"), BOUNDED,
                         ids=[f"{t}.{k}" for t, k, _, _ in BOUNDED])
def test_a_number_outside_its_bounds_is_refused(tmp_path: Path, table: str, key: str,
                                                minimum: float, maximum: float) -> None:
    base = {**MINIMAL, "cluster": CLUSTER}
    for value in (minimum - 1, maximum * 2 if maximum != float("inf") else None):
        if value is None:
            continue
        data = {**base, table: {**base.get(table, {}), key: value}}
        with pytest.raises(ConfigError, match=rf"\[{table}\] {key}: .* is outside"):
            config_from_dict(data, base_dir=tmp_path, source="site.toml")
    data = {**base, table: {**base.get(table, {}), key: minimum}}
    try:
        config_from_dict(data, base_dir=tmp_path, source="site.toml")
    except ConfigError as exc:  # the minimum itself is allowed; only a cross-key check may fail
        assert "is outside" not in str(exc)
