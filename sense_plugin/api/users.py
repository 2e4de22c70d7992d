"""Who is calling: a user name and the permissions docs/authentication.rst defines."""

from __future__ import annotations

from dataclasses import dataclass

from sense_plugin.permissions import ADMIN, EXPORT, PERMISSIONS, VIEW

__all__ = ["ADMIN", "ANONYMOUS", "ANY", "EXPORT", "VIEW", "User"]

#: Not a permission users hold: commands every authenticated user may run (``logout``).
ANY = "any"


@dataclass(frozen=True)
class User:
    name: str
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        """True when the user holds ``permission`` (admin holds every permission)."""
        return permission == ANY or permission in self.permissions or ADMIN in self.permissions

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions


#: The caller when authentication is disabled (allowed only on loopback).
ANONYMOUS = User("anonymous", PERMISSIONS)
