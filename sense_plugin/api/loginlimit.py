"""Login failure limits: sliding windows per (address, user), per user and per address.

An attempt is counted *before* its password is hashed (a reservation that only a correct
password gives back), so parallel guesses are limited exactly like sequential ones. Counting per
(address, user) first means one address (loopback, a reverse proxy) that guesses one user's
password does not lock out the other users behind that address; the per-user limit stops a guess
spread over many addresses. The per-address limit (off by default, because behind a reverse
proxy or NAT every user shares one address) stops one address spraying many names.
Every name is counted alike, known or not, so the limits reveal nothing about which users exist.

The table of counters is bounded without ever forgetting a failure (docs/security.rst, "Login
limits"): an attempt that is never hashed leaves no counter behind, a counter whose window still
holds a failure is never dropped to make room, and one address may have failures counted for at
most ``max_names_per_address`` names at once. A table full of live failures refuses attempts
that would need a new counter (-1006) until failures leave the window.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from itertools import islice

from sense_plugin.api.passcheck import ServiceBusyError
from sense_plugin.configmodel import AuthConfig
from sense_plugin.errors import AuthRequiredError

#: User names are counted by at most this many characters.
MAX_NAME_CHARS = 256
#: Counters looked at, oldest first, for room when the table is full (bounded work per attempt).
ROOM_SCAN = 64

Key = tuple[str, str]


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
        self._max_keys = config.max_login_keys
        self._max_names = config.max_names_per_address
        #: Least recently counted first.
        self._counters: OrderedDict[Key, deque[float]] = OrderedDict()
        #: The names each address has a counter for (its share of the table).
        self._names: dict[str, set[str]] = {}

    def reserve(self, address: str, username: str) -> Reservation:
        """Count one attempt now, or raise when a limit is reached.

        :class:`LoginThrottledError` (-1001) for too many failures or names,
        :class:`ServiceBusyError` (-1006) when the table is full of live failures.
        """
        now = time.monotonic()
        name = username[:MAX_NAME_CHARS]
        every = (("pair", f"{address}\0{name}"), ("user", name), ("addr", address))
        keys = tuple(k for k in every if self._limits[k[0]] > 0)  # 0: that limit is off
        for key in keys:
            window = self._window(key, now)
            if len(window) >= self._limits[key[0]]:
                raise self._throttled(key[0], window[0] + self._window_s - now)
        if keys[0] not in self._counters:
            self._check_names(address, now)
        self._make_room(sum(k not in self._counters for k in keys), now)
        for key in keys:
            self._counters.setdefault(key, deque()).append(now)
            self._counters.move_to_end(key)
        self._names.setdefault(address, set()).add(name)
        return Reservation(keys, now)

    def release(self, reservation: Reservation, *, success: bool) -> None:
        """Give back an attempt that proved the password, or that was never hashed.

        A success also clears the failures of its own (address, user) pair. A counter left
        empty is dropped at once, so attempts that were never hashed leave nothing behind.
        """
        for key in reservation.keys:
            window = self._counters.get(key)
            if window is None:
                continue
            if success and key[0] == "pair":
                window.clear()
            elif reservation.at in window:
                window.remove(reservation.at)
            if not window:
                self._drop(key)

    def prune(self) -> None:
        """Drop counters whose every failure has left the window (called periodically)."""
        now = time.monotonic()
        for key in [k for k in self._counters if not self._window(k, now)]:
            self._drop(key)

    def _check_names(self, address: str, now: float) -> None:
        """Refuse a new name from an address that already has its share of counters."""
        names = self._names.get(address, set())
        if len(names) < self._max_names:
            return
        for name in list(names):  # at most max_names_per_address: bounded work
            if not self._window(("pair", f"{address}\0{name}"), now):
                self._drop(("pair", f"{address}\0{name}"))
        if len(names) >= self._max_names:
            oldest = min(self._counters[("pair", f"{address}\0{n}")][-1] for n in names)
            retry_s = max(1, int(oldest + self._window_s - now) + 1)
            raise LoginThrottledError(
                f"too many user names tried from this address; retry in {retry_s} s", retry_s)

    def _make_room(self, needed: int, now: float) -> None:
        """Drop expired counters, oldest first, until ``needed`` more fit; never a live one."""
        for key in list(islice(self._counters, ROOM_SCAN)) if self._full(needed) else ():
            if not self._full(needed):
                return
            if self._window(key, now):
                self._counters.move_to_end(key)  # still counting: look at others next time
            else:
                self._drop(key)
        if self._full(needed):
            raise ServiceBusyError(
                "too many login failures are being counted; retry in 10 s", retry_after_s=10)

    def _full(self, needed: int) -> bool:
        return len(self._counters) + needed > self._max_keys

    def _drop(self, key: Key) -> None:
        del self._counters[key]
        if key[0] == "pair":
            address, _, name = key[1].partition("\0")
            names = self._names.get(address)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._names[address]

    def _window(self, key: Key, now: float) -> deque[float]:
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
