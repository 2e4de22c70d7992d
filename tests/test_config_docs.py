"""Configuration defaults live in one place (the dataclass fields of ``configmodel``).

``docs/configuration.rst`` documents every key with its default, and the packaged
``default.toml`` sets no scalar key to anything but its default (beyond the server's own
identity): both are checked against the fields here, so a default changed in code and not in
the documents (or the other way round) fails.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from sense_plugin.config import default_config_path
from sense_plugin.configmodel import (
    ArchiveConfig,
    AuthConfig,
    EvidenceConfig,
    ExportConfig,
    HttpConfig,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.rst"
#: The TOML tables whose keys are the dataclass's fields, one to one.
TABLES: dict[str, type[Any]] = {"http": HttpConfig, "auth": AuthConfig, "export": ExportConfig,
                                "archive": ArchiveConfig, "evidence": EvidenceConfig}
#: Keys that are not scalar settings (tables of their own, read by hand).
NOT_SCALAR = {("auth", "users")}


def scalar_defaults(cls: type[Any]) -> dict[str, Any]:
    """Field name → default of every field with a plain default."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def all_keys(cls: type[Any], table: str) -> set[str]:
    return {f.name for f in fields(cls)} - {key for t, key in NOT_SCALAR if t == table}


def documented_block() -> str:
    """The first ``toml`` code block of docs/configuration.rst, unindented."""
    text = DOCS.read_text()
    body = re.search(r"\.\. code-block:: toml\n\n((?:    .*\n|\n)+)", text)
    assert body, "docs/configuration.rst has no toml block"
    return "\n".join(line[4:] for line in body.group(1).split("\n"))


def commented_keys(block: str) -> dict[str, set[str]]:
    """Per table, the keys shown commented out (``# key = ...``): documented, no default."""
    found: dict[str, set[str]] = {}
    table = ""
    for line in block.split("\n"):
        header = re.match(r"\[\[?([a-z_.]+)\]\]?", line)
        if header:
            table = header.group(1)
        key = re.match(r"#\s*([a-z_]+)\s*=", line)
        if key:
            found.setdefault(table, set()).add(key.group(1))
    return found


def same(documented: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(documented, bool):
        return documented is default
    if isinstance(default, tuple | list):
        return isinstance(documented, tuple | list) and list(documented) == list(default)
    if isinstance(default, int | float):
        return isinstance(documented, int | float) and float(documented) == float(default)
    return bool(documented == default)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_key_is_documented_with_its_default(table: str) -> None:
    block = documented_block()
    documented = tomllib.loads(block).get(table, {})
    commented = commented_keys(block).get(table, set())
    cls = TABLES[table]
    defaults = scalar_defaults(cls)
    undocumented = all_keys(cls, table) - set(documented) - commented
    assert not undocumented, f"[{table}] keys missing from docs/configuration.rst: {undocumented}"
    unknown = set(documented) - all_keys(cls, table) - {k for t, k in NOT_SCALAR if t == table}
    assert not unknown, f"docs/configuration.rst documents unknown [{table}] keys: {unknown}"
    wrong = {key: (value, defaults[key]) for key, value in documented.items()
             if key in defaults and (table, key) not in NOT_SCALAR
             and not same(value, defaults[key])}
    assert not wrong, f"[{table}] documented value != default (documented, default): {wrong}"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_packaged_default_sets_only_defaults(table: str) -> None:
    packaged = tomllib.loads(default_config_path().read_text()).get(table, {})
    defaults = scalar_defaults(TABLES[table])
    unknown = set(packaged) - set(defaults) - {k for t, k in NOT_SCALAR if t == table}
    assert not unknown, f"default.toml sets unknown [{table}] keys: {unknown}"
    wrong = {key: (value, defaults[key]) for key, value in packaged.items()
             if key in defaults and not same(value, defaults[key])}
    assert not wrong, f"default.toml [{table}] value != the field's default: {wrong}"


def test_a_changed_default_is_caught() -> None:
    """The comparison itself: a value other than the default is reported."""
    assert not same(11, 10) and not same(True, 1) and same(15, 15.0) and same("a", "a")
