"""Errors of the cluster layer that stop the server at start (exit 2, like a config error)."""

from __future__ import annotations

from sense_plugin.errors import ConfigError


class DatabaseUnavailableError(ConfigError):
    """``[cluster] database_url`` cannot be reached (or refuses the credentials)."""


class SchemaTooNewError(ConfigError):
    """The database was upgraded by a newer sense_plugin than this one."""
