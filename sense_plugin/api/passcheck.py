"""Password checks off the event loop: scrypt on its own small pool, bounded, single-flight.

* scrypt runs on a dedicated pool of ``auth.hash_threads`` threads, never on the I/O pool that
  serves downloads and status, so a flood of wrong passwords cannot slow those down;
* at most ``auth.max_pending_hashes`` checks run or wait; one more is refused at once with
  -1006 (HTTP 503, ``Retry-After``) instead of queueing without bound;
* an unknown user is checked against a dummy hash made with the same parameters, so an unknown
  name costs the same time as a wrong password (no user enumeration by timing);
* identical concurrent checks (same user and password) share one hash;
* a password proven correct is remembered (as an HMAC, never in clear) for a few minutes, so
  HTTP Basic clients are not re-hashed on every request. Only correct passwords are remembered.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sense_plugin.configmodel import AuthConfig, UserConfig
from sense_plugin.errors import NotAvailableError
from sense_plugin.passwords import hash_params, hash_password, verify_password

CREDENTIAL_CACHE_S = 300.0
MAX_CACHED = 10_000


@functools.cache
def dummy_hash(params: tuple[int, int, int] | None) -> str:
    """A hash nobody knows the password of (once per process and parameters)."""
    if params is not None:
        try:
            return hash_password(secrets.token_urlsafe(16), params)
        except (ValueError, MemoryError):  # parameters scrypt refuses: the users' hashes fail too
            pass
    return hash_password(secrets.token_urlsafe(16))


class ServiceBusyError(NotAvailableError):
    """Too much work of one kind at once (-1006, HTTP 503, ``Retry-After``)."""

    http_status = 503

    def __init__(self, description: str, retry_after_s: int = 1) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


class PasswordChecker:
    """Verifies passwords; owns the scrypt thread pool (call :meth:`close`)."""

    def __init__(self, config: AuthConfig) -> None:
        self._pool = ThreadPoolExecutor(config.hash_threads, thread_name_prefix="sense-scrypt")
        self._max_pending = config.max_pending_hashes
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        self._verified: dict[bytes, float] = {}
        self._key = secrets.token_bytes(32)
        # Made off the event loop, with the parameters of the configured users' hashes, so an
        # unknown name costs what a known one does.
        params = Counter(hash_params(u.password_hash) for u in config.users).most_common(1)
        self._dummy_hash = self._pool.submit(dummy_hash, params[0][0] if params else None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def remembered(self, username: str, password: str) -> bool:
        """True when this password was proven correct for this user in the last few minutes."""
        now = asyncio.get_running_loop().time()
        return self._verified.get(self._token(username, password), 0.0) > now

    def in_flight(self, username: str, password: str) -> asyncio.Future[bool] | None:
        """The check of this very name and password already running, if any (to share it)."""
        return self._pending.get(self._token(username, password))

    async def verify(self, username: str, user: UserConfig | None, password: str) -> bool:
        """Hash ``password`` against ``user``'s hash (a dummy one for an unknown user).

        Raises :class:`ServiceBusyError` when ``max_pending_hashes`` checks are under way.
        """
        token = self._token(username, password)
        if user is not None:
            encoded = user.password_hash
        elif self._dummy_hash.done():
            encoded = self._dummy_hash.result()
        else:  # only in the first moments after start
            encoded = await asyncio.wrap_future(self._dummy_hash)
        # No await from this check to the registration below: the bound holds exactly.
        if len(self._pending) >= self._max_pending:
            raise ServiceBusyError("too many logins are being checked at once; retry in 1 s")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, verify_password, password, encoded)
        # Counted until the hash is done, even when its client goes away meanwhile.
        self._pending[token] = future
        future.add_done_callback(lambda done: self._forget_pending(token, done))
        ok = await asyncio.shield(future) and user is not None
        if ok:
            if len(self._verified) >= MAX_CACHED:
                self._verified.clear()
            self._verified[token] = loop.time() + CREDENTIAL_CACHE_S
        return ok

    def _forget_pending(self, token: bytes, done: asyncio.Future[bool]) -> None:
        if self._pending.get(token) is done:
            del self._pending[token]

    def _token(self, name: str, password: str) -> bytes:
        message = len(name).to_bytes(4, "big") + name.encode() + password.encode()
        return hmac.digest(self._key, message, hashlib.sha256)
