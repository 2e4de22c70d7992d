"""Typed reading of TOML tables: every error names the file, the table and the key.

A key's default and bounds come from its dataclass field (``configmodel``), so they are
written once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sense_plugin.configmodel import BOUNDS
from sense_plugin.errors import ConfigError
from sense_plugin.ids import is_u64_text

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
#: The field annotations a key may be read as generically (``from __future__ import
#: annotations`` leaves them as text).
_KINDS: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


def field_of(cls: type[DataclassInstance], key: str) -> Field[Any]:
    """Field ``key`` of dataclass ``cls``."""
    return _fields_of(cls)[key]


@functools.cache
def _fields_of(cls: type[DataclassInstance]) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(cls)}


def default_of(cls: type[DataclassInstance], key: str) -> Any:
    """The default of field ``key`` of dataclass ``cls`` (the key's default in TOML)."""
    default = field_of(cls, key).default
    if default is MISSING:
        raise TypeError(f"{cls.__name__}.{key} has no default")
    return default


class TableReader:
    """Typed accessors that name the file, table and key in every error."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {problem}")

    def table(self, data: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            raise self.fail(f"[{name}]", "must be a table")
        self.check_keys(value, f"[{name}]", keys)
        return value

    def check_keys(self, table: Mapping[str, Any], where: str, keys: set[str]) -> None:
        unknown = sorted(set(table) - keys)
        if unknown:
            raise self.fail(where, f"unknown key '{unknown[0]}' (known: {', '.join(sorted(keys))})")

    def get(self, table: Mapping[str, Any], where: str, key: str, kind: type, default: Any) -> Any:
        value = table.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{where} {key}", f"expected {kind.__name__}, got {value!r}")
        return value

    def required(self, table: Mapping[str, Any], where: str, key: str, kind: type) -> Any:
        """A key without a default: absent is an error."""
        if key not in table:
            raise self.fail(where, f"missing key '{key}'")
        return self.get(table, where, key, kind, None)

    def setting(self, table: Mapping[str, Any], where: str, cls: type[DataclassInstance],
                key: str) -> Any:
        """``key`` read as its field in ``cls`` declares it: kind, default and bounds."""
        spec = field_of(cls, key)
        kind = _KINDS[str(spec.type)]
        value = self.get(table, where, key, kind, default_of(cls, key))
        if kind in (int, float):
            minimum, maximum = spec.metadata.get(BOUNDS, (0, float("inf")))
            if not minimum <= value <= maximum:
                raise self.fail(f"{where} {key}", f"{value} is outside {minimum}..{maximum}")
        return value

    def settings(self, table: Mapping[str, Any], where: str, cls: type[T], **given: Any) -> T:
        """Dataclass ``cls`` from its table: the ``given`` fields as they are, each other
        field read with :meth:`setting`, in field order."""
        values = {f.name: given[f.name] if f.name in given
                  else self.setting(table, where, cls, f.name) for f in fields(cls)}
        return cls(**values)

    def u64(self, table: Mapping[str, Any], where: str, key: str) -> int:
        if key not in table:
            raise self.fail(where, f"missing key '{key}'")
        text = str(table[key])
        if not is_u64_text(text):
            raise self.fail(f"{where} {key}", f"'{text}' is not an unsigned 64-bit number")
        return int(text)

    def path(self, value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a non-empty path string, got {value!r}")
        return (self.base_dir / Path(value).expanduser()).resolve()
