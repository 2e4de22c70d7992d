"""Login failure limits: sliding windows per (address, user), per user and per address.

An attempt is counted *before* its password is hashed (a reservation that only a correct
password gives back), so parallel guesses are limited exactly like sequential ones. Counting per
(address, user) first means one address (loopback, a reverse proxy) that guesses one user's
password does not lock out the other users behind that address; the per-user limit stops a guess
spread over many addresses. The per-address limit (off by default, because behind a reverse
proxy or NAT every user shares one address) stops one address spraying many names.
Every name is counted alike, known or not, so the limits reveal nothing about which users exist.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from sense_plugin.configmodel import AuthConfig
from sense_plugin.errors import AuthRequiredError

#: Counters kept at most; the least recently used go first (bounded memory under a flood).
MAX_KEYS = 100_000
#: User names are counted by at most this many characters.
MAX_NAME_CHARS = 256


class LoginThrottledError(AuthRequiredError):
    """Too many failed logins (-1001, HTTP 401, with ``Retry-After``)."""

    def __init__(self, description: str, retry_after_s: int) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Reservation:
    """One counted attempt: the keys it was counted under and when."""

    keys: tuple[tuple[str, str], ...]
    at: float


class LoginLimiter:
    """Sliding-window failure counters; see the module docstring for the policy."""

    def __init__(self, config: AuthConfig) -> None:
        self._window_s = config.login_window_s
        self._limits = {
            "pair": config.max_failures_per_address_user,
            "user": config.max_failures_per_user,
            "addr": config.max_failures_per_address,
        }
        self._counters: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def reserve(self, address: str, username: str) -> Reservation:
        """Count one attempt now, or raise :class:`LoginThrottledError` when a limit is reached."""
        now = time.monotonic()
        name = username[:MAX_NAME_CHARS]
        every = (("pair", f"{address}\0{name}"), ("user", name), ("addr", address))
        keys = tuple(k for k in every if self._limits[k[0]] > 0)  # 0: that limit is off
        for key in keys:
            window = self._window(key, now)
            if len(window) >= self._limits[key[0]]:
                raise self._throttled(key[0], window[0] + self._window_s - now)
        for key in keys:
            self._counters.setdefault(key, deque()).append(now)
            self._counters.move_to_end(key)
        while len(self._counters) > MAX_KEYS:
            self._counters.popitem(last=False)
        return Reservation(keys, now)

    def release(self, reservation: Reservation, *, success: bool) -> None:
        """Give back an attempt that proved the password, or that was never hashed.

        A success also clears the failures of its own (address, user) pair.
        """
        for key in reservation.keys:
            window = self._counters.get(key)
            if window is None:
                continue
            if success and key[0] == "pair":
                window.clear()
            elif reservation.at in window:
                window.remove(reservation.at)

    def prune(self) -> None:
        """Drop counters whose every failure has left the window (called periodically)."""
        now = time.monotonic()
        for key in [k for k in self._counters if not self._window(k, now)]:
            del self._counters[key]

    def _window(self, key: tuple[str, str], now: float) -> deque[float]:
        window = self._counters.get(key)
        if window is None:
            return deque()
        cutoff = now - self._window_s
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    @staticmethod
    def _throttled(kind: str, wait_s: float) -> LoginThrottledError:
        retry_s = max(1, int(wait_s) + 1)
        who = {"pair": "for this user from this address", "user": "for this user",
               "addr": "from this address"}[kind]
        return LoginThrottledError(f"too many failed logins {who}; retry in {retry_s} s", retry_s)
