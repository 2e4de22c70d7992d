"""Authentication (docs/authentication.rst): login sessions with idle expiry, HTTP Basic, failure
limits.

The order of a password check is the defence: a password proven correct a moment ago passes;
the same check already running is shared; otherwise the attempt is counted against the limits
(:mod:`loginlimit`) *before* scrypt runs on its own bounded pool (:mod:`passcheck`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from aiohttp import web

from sense_plugin.api.loginlimit import LoginLimiter
from sense_plugin.api.passcheck import PasswordChecker, ServiceBusyError
from sense_plugin.api.sessions import SessionTable
from sense_plugin.api.users import ANONYMOUS, User
from sense_plugin.config import AuthConfig
from sense_plugin.errors import AuthRequiredError

SESSION_COOKIE = "sessionkey"


class Authenticator:
    """Checks credentials and owns the session table (call :meth:`close`)."""

    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        self._users = {u.name: u for u in config.users}
        self.sessions = SessionTable(config.session_idle_s, config.max_sessions_per_user)
        self._limiter = LoginLimiter(config)
        self._checker = PasswordChecker(config)
        #: Awaited with (user name, address) of each failed login (the audit trail).
        self.on_failure: Callable[[str, str], Awaitable[object]] | None = None

    def close(self) -> None:
        self._checker.close()

    async def login(self, username: str, password: str, remote: str,
                    previous_key: str | None = None) -> str:
        """Check a username/password and return a new session key.

        ``previous_key`` (the caller's current cookie) is revoked: logging in again replaces
        the browser's session instead of leaving the old key valid. With authentication
        disabled (loopback only) every login succeeds as the anonymous user.
        """
        user = (await self._check_password(username, password, remote)
                if self._config.enabled else ANONYMOUS)
        if previous_key:
            self.sessions.revoke(previous_key)
        return self.sessions.open(user)

    async def authenticate(self, request: web.Request) -> User:
        """The caller of ``request``: session cookie, else HTTP Basic; -1001 (401) otherwise."""
        if not self._config.enabled:
            return ANONYMOUS
        key = request.cookies.get(SESSION_COOKIE)
        if key:
            user = self.sessions.user(key)
            if user is not None:
                return user
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            username, password = _decode_basic(header[6:])
            return await self._check_password(username, password, request.remote or "?")
        if key:
            raise AuthRequiredError("session expired or unknown; log in again")
        raise AuthRequiredError("authentication required: log in or send HTTP Basic credentials")

    async def _check_password(self, username: str, password: str, remote: str) -> User:
        config = self._users.get(username)
        checker = self._checker
        if config is not None and checker.remembered(username, password):
            return User(config.name, config.permissions)
        shared = checker.in_flight(username, password)
        if shared is not None:  # the same guess, already counted once
            ok = await shared
        else:
            reservation = self._limiter.reserve(remote, username)
            try:
                ok = await checker.verify(username, config, password)
            except ServiceBusyError:
                self._limiter.release(reservation, success=False)  # never hashed: not a guess
                raise
            if ok:
                self._limiter.release(reservation, success=True)
        if ok and config is not None:
            return User(config.name, config.permissions)
        if self.on_failure is not None:
            await self.on_failure(username, remote)
        raise AuthRequiredError("invalid user name or password")

    def sweep(self) -> None:
        """Drop idle sessions and stale failure counters (called periodically)."""
        self.sessions.expire()
        self._limiter.prune()


def _decode_basic(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthRequiredError("malformed HTTP Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthRequiredError("malformed HTTP Basic credentials")
    return username, password
