"""Authentication (SPEC §4): login sessions with idle expiry, HTTP Basic, failure rate limits."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import deque
from concurrent.futures import Executor

from aiohttp import web

from sense_plugin.api.users import ANONYMOUS, User
from sense_plugin.config import AuthConfig, UserConfig
from sense_plugin.errors import AuthRequiredError
from sense_plugin.passwords import verify_password

SESSION_COOKIE = "sessionkey"
MAX_FAILURES = 10          # failed logins per address ...
FAILURE_WINDOW_S = 300.0   # ... within this window before further attempts are refused
CREDENTIAL_CACHE_S = 300.0  # a verified Basic password is not re-hashed for this long


class Authenticator:
    """Checks credentials and owns the in-memory session table."""

    def __init__(self, config: AuthConfig, executor: Executor) -> None:
        self._config = config
        self._executor = executor
        self._users = {u.name: u for u in config.users}
        self._sessions: dict[str, tuple[User, float]] = {}
        self._failures: dict[str, deque[float]] = {}
        self._verified: dict[bytes, float] = {}
        self._cache_key = secrets.token_bytes(32)

    async def login(self, username: str, password: str, remote: str) -> str:
        """Check a username/password and return a new session key.

        With authentication disabled (loopback only) every login succeeds as the anonymous
        user, so browser and script clients work the same way in both modes.
        """
        user = (await self._check_password(username, password, remote)
                if self._config.enabled else ANONYMOUS)
        key = secrets.token_urlsafe(32)
        self._sessions[key] = (user, time.monotonic())
        return key

    async def authenticate(self, request: web.Request) -> User:
        """The caller of ``request``: session cookie, else HTTP Basic; -1001 (401) otherwise."""
        if not self._config.enabled:
            return ANONYMOUS
        key = request.cookies.get(SESSION_COOKIE)
        if key:
            user = self._session_user(key)
            if user is not None:
                return user
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            username, password = _decode_basic(header[6:])
            return await self._check_password(username, password, request.remote or "?")
        if key:
            raise AuthRequiredError("session expired or unknown; log in again")
        raise AuthRequiredError("authentication required: log in or send HTTP Basic credentials")

    def _session_user(self, key: str) -> User | None:
        entry = self._sessions.get(key)
        if entry is None:
            return None
        user, last_seen = entry
        now = time.monotonic()
        if now - last_seen > self._config.session_idle_s:
            del self._sessions[key]
            return None
        self._sessions[key] = (user, now)
        return user

    async def _check_password(self, username: str, password: str, remote: str) -> User:
        self._refuse_if_throttled(remote)
        config = self._users.get(username)
        if config is not None and await self._verify(config, password):
            return User(config.name, config.permissions)
        self._failures.setdefault(remote, deque()).append(time.monotonic())
        raise AuthRequiredError("invalid user name or password")

    async def _verify(self, config: UserConfig, password: str) -> bool:
        token = hmac.digest(self._cache_key, f"{config.name}\0{password}".encode(), hashlib.sha256)
        now = time.monotonic()
        if self._verified.get(token, 0.0) > now:
            return True
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._executor, verify_password, password,
                                        config.password_hash)
        if ok:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = now + CREDENTIAL_CACHE_S
        return ok

    def _refuse_if_throttled(self, remote: str) -> None:
        failures = self._failures.get(remote)
        if not failures:
            return
        cutoff = time.monotonic() - FAILURE_WINDOW_S
        while failures and failures[0] < cutoff:
            failures.popleft()
        if len(failures) >= MAX_FAILURES:
            retry_s = int(failures[0] - cutoff) + 1
            raise AuthRequiredError(
                f"too many failed logins from this address; retry in {retry_s} s"
            )

    def expire_sessions(self) -> None:
        """Drop idle sessions (called periodically)."""
        cutoff = time.monotonic() - self._config.session_idle_s
        for key in [k for k, (_, seen) in self._sessions.items() if seen < cutoff]:
            del self._sessions[key]


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthRequiredError("malformed HTTP Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthRequiredError("malformed HTTP Basic credentials")
    return username, password
