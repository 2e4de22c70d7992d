"""The in-memory session table: idle expiry, a per-user cap, revocation of one or all."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sense_plugin.api.users import User


@dataclass
class Session:
    user: User
    created: float
    last_seen: float


class SessionTable:
    """Session keys → users; a key is valid until idle for ``idle_s``, revoked or pushed out."""

    def __init__(self, idle_s: float, max_per_user: int) -> None:
        self._idle_s = idle_s
        self._max_per_user = max_per_user
        self._sessions: dict[str, Session] = {}

    def open(self, user: User) -> str:
        """A new session key for ``user``; past the per-user cap the oldest session is revoked."""
        now = time.monotonic()
        mine = sorted((s.created, k) for k, s in self._sessions.items() if s.user == user)
        for _, key in mine[: max(0, len(mine) - self._max_per_user + 1)]:
            del self._sessions[key]
        key = secrets.token_urlsafe(32)
        self._sessions[key] = Session(user, now, now)
        return key

    def user(self, key: str) -> User | None:
        """The user of a live session (and mark it used), or None."""
        session = self._sessions.get(key)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self._idle_s:
            del self._sessions[key]
            return None
        session.last_seen = now
        return session.user

    def revoke(self, key: str) -> bool:
        """End one session; False when it was not live."""
        return self._sessions.pop(key, None) is not None

    def revoke_user(self, name: str) -> int:
        """End every session of user ``name``; returns how many."""
        keys = [k for k, s in self._sessions.items() if s.user.name == name]
        for key in keys:
            del self._sessions[key]
        return len(keys)

    def expire(self) -> None:
        """Drop idle sessions (called periodically)."""
        cutoff = time.monotonic() - self._idle_s
        for key in [k for k, s in self._sessions.items() if s.last_seen < cutoff]:
            del self._sessions[key]
