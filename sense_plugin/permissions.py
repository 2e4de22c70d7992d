"""The permissions a user may hold (docs/authentication.rst): read by the configuration and the
API."""

from __future__ import annotations

VIEW, EXPORT, ADMIN = "view", "export", "admin"
#: Every permission a ``[[auth.users]]`` entry may list.
PERMISSIONS = frozenset({VIEW, EXPORT, ADMIN})
