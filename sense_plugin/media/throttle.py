"""A token bucket that paces writes to a bandwidth cap which may change while it runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Longest single sleep, so a new rate or a cancellation takes effect promptly.
MAX_SLEEP_S = 0.05
#: Shortest sleep: waking for less only burns CPU.
MIN_SLEEP_S = 0.001
#: While ``consume`` paces, ``on_paced`` is called at most this often.
HEARTBEAT_S = 0.5


class TokenBucket:
    """Paces a byte stream to ``rate_kbps`` kilobits per second (1 kbit = 1000 bits).

    The bucket holds at most ``burst_s`` seconds' worth of bytes and starts full, so over any
    window of ``w`` seconds at most ``rate * w + burst`` bytes pass. With the default 0.1 s
    burst the rate over any 5 s window stays within 2% of the cap, leaving room for scheduling
    jitter inside the 5% the product promises. A rate of 0 means unlimited. ``set_rate`` may be
    called from another thread; a sleeping ``consume`` notices within ``MAX_SLEEP_S``.

    ``on_paced(passed_bytes)`` is a heartbeat: called every ``HEARTBEAT_S`` while ``consume``
    sleeps, with the bytes let through so far, so a job paced to a low cap still shows that it
    moves (a stall watchdog tells it from a worker that stopped; ``docs/scheduling.rst``).
    """

    def __init__(
        self,
        rate_kbps: float = 0,
        *,
        burst_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst_s <= 0:
            raise ValueError("burst_s must be positive")
        self._burst_s = burst_s
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._rate_bps = 0.0  # bytes per second; 0 = unlimited
        self._tokens = 0.0
        self._stamp = clock()
        self.set_rate(rate_kbps)
        self._tokens = self._capacity()
        #: Total seconds spent sleeping in ``consume`` (for measurements).
        self.slept_s = 0.0
        #: Bytes let through so far (taken by ``consume``).
        self.passed_bytes = 0
        #: Heartbeat while pacing (see the class docstring); None: none.
        self.on_paced: Callable[[int], None] | None = None
        self._beat = clock()

    @property
    def rate_kbps(self) -> float:
        """The current cap in kbit/s (0 = unlimited)."""
        return self._rate_bps * 8 / 1000

    def set_rate(self, kbps: float) -> None:
        """Change the cap to ``kbps`` kbit/s; 0 (or less) removes it."""
        with self._lock:
            self._refill()
            self._rate_bps = max(0.0, float(kbps)) * 1000 / 8
            self._tokens = min(self._tokens, self._capacity())

    def chunk_bytes(self, limit: int = 256 * 1024) -> int:
        """A write size that keeps pacing even: about 1/50 s of the current rate."""
        rate = self._rate_bps
        return limit if rate == 0 else max(512, min(limit, int(rate / 50)))

    def consume(self, nbytes: int, should_stop: Callable[[], bool] | None = None) -> bool:
        """Take ``nbytes`` from the bucket, sleeping until the bucket is no longer in debt.

        Returns False (without waiting further) as soon as ``should_stop()`` is true.
        """
        with self._lock:
            self._refill()
            self._tokens -= nbytes
            self.passed_bytes += nbytes
        while True:
            with self._lock:
                self._refill()
                rate, debt = self._rate_bps, -self._tokens
            if rate == 0 or debt < 1:  # under a byte: float noise, not debt
                return True
            if should_stop is not None and should_stop():
                return False
            pause = min(max(debt / rate, MIN_SLEEP_S), MAX_SLEEP_S)
            self._sleep(pause)
            self.slept_s += pause
            self._heartbeat()

    def _heartbeat(self) -> None:
        if self.on_paced is not None and self._clock() - self._beat >= HEARTBEAT_S:
            self._beat = self._clock()
            self.on_paced(self.passed_bytes)

    def _capacity(self) -> float:
        return self._rate_bps * self._burst_s

    def _refill(self) -> None:
        now = self._clock()
        elapsed, self._stamp = now - self._stamp, now
        if self._rate_bps == 0:
            self._tokens = 0.0
        else:
            self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate_bps)
