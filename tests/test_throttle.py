"""Tests of the token bucket (sense_plugin.media.throttle), mostly on a simulated clock."""

from __future__ import annotations

import threading
import time

import pytest

from sense_plugin.media.throttle import MAX_SLEEP_S, TokenBucket


class FakeClock:
    """A clock that only moves when the bucket sleeps (plus optional work per call)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def make(rate_kbps: float, clock: FakeClock, **kwargs: float) -> TokenBucket:
    return TokenBucket(rate_kbps, clock=clock, sleep=clock.sleep, **kwargs)


@pytest.mark.parametrize("chunk", [1_000, 12_500, 65_536])
def test_any_window_stays_within_the_cap(chunk: int) -> None:
    """Bytes completed in any 5 s window after the first second stay within 5% of the cap."""
    clock = FakeClock()
    bucket = make(1_000, clock)  # 125 000 bytes/s, burst 0.1 s = 12 500 bytes
    times: list[float] = []
    while clock.now < 130.0:
        bucket.consume(chunk)
        times.append(clock.now)  # the chunk may be written now
    rate, window = 125_000, 5.0
    worst, end = 0, 0
    for start in range(len(times)):
        if times[start] < 101.0:
            continue
        while end < len(times) and times[end] <= times[start] + window:
            end += 1
        worst = max(worst, (end - start) * chunk)  # chunks written in [t_start, t_start + 5]
    assert worst <= rate * window * 1.05
    assert len(times) * chunk / (times[-1] - 100.0) == pytest.approx(rate, rel=0.02)


def test_sleeps_are_short_so_changes_apply_quickly() -> None:
    clock = FakeClock()
    bucket = make(80, clock)  # 10 000 bytes/s
    bucket.consume(50_000)
    assert max(clock.sleeps) <= MAX_SLEEP_S
    assert clock.now - 100.0 == pytest.approx(4.9, abs=0.01)  # 5 s of data less a 0.1 s burst
    assert bucket.slept_s == pytest.approx(sum(clock.sleeps))


def test_unlimited_never_sleeps() -> None:
    clock = FakeClock()
    bucket = make(0, clock)
    for _ in range(1000):
        assert bucket.consume(1 << 20)
    assert clock.sleeps == []
    assert bucket.rate_kbps == 0


def test_set_rate_takes_effect_and_zero_unlimits() -> None:
    clock = FakeClock()
    bucket = make(8, clock)  # 1000 bytes/s
    bucket.consume(100)  # the initial burst
    bucket.set_rate(80)  # 10 000 bytes/s
    start = clock.now
    bucket.consume(10_000)
    assert clock.now - start == pytest.approx(1.0, abs=0.01)
    bucket.set_rate(0)
    start = clock.now
    bucket.consume(10_000_000)
    assert clock.now == start


def test_should_stop_interrupts_the_wait() -> None:
    clock = FakeClock()
    bucket = make(8, clock)
    calls = iter(range(100))
    assert bucket.consume(1_000_000, should_stop=lambda: next(calls) >= 3) is False
    assert clock.now - 100.0 <= 3 * MAX_SLEEP_S


def test_chunk_size_follows_the_rate() -> None:
    assert TokenBucket(0).chunk_bytes() == 256 * 1024
    assert TokenBucket(4_000).chunk_bytes() == 10_000  # 500 kB/s / 50
    assert TokenBucket(8).chunk_bytes() == 512


def test_real_clock_never_beats_the_cap() -> None:
    """On the real clock: writing N bytes takes at least (N - burst) / rate (sleep never
    returns early), measured rate printed for the record."""
    bucket = TokenBucket(4_000)  # 500 000 bytes/s, burst 50 000
    start = time.monotonic()
    for _ in range(40):
        bucket.consume(10_000)
    elapsed = time.monotonic() - start
    assert elapsed >= (400_000 - 50_000) / 500_000
    print(f"throttle: {400_000 / elapsed / 1000 * 8:.0f} kbit/s for a 4000 kbit/s cap")


def test_rate_can_change_from_another_thread() -> None:
    bucket = TokenBucket(8)  # 1000 bytes/s: 100 kB would take 100 s
    timer = threading.Timer(0.1, bucket.set_rate, args=(0,))
    timer.start()
    start = time.monotonic()
    bucket.consume(100_000)
    timer.join()
    assert time.monotonic() - start < 5


def test_a_paced_consume_reports_a_heartbeat_with_the_bytes_let_through() -> None:
    """A job paced to a low cap shows that it moves (the stall watchdog counts on it)."""
    from sense_plugin.media.throttle import HEARTBEAT_S

    clock = FakeClock()
    bucket = make(16, clock)  # 2000 bytes/s
    beats: list[tuple[float, int]] = []
    bucket.on_paced = lambda passed: beats.append((clock.now, passed))
    for _ in range(20):
        bucket.consume(512)
    assert clock.now - 100.0 == pytest.approx(20 * 512 / 2000 - 0.1, abs=0.05)
    gaps = [b[0] - a[0] for a, b in zip(beats, beats[1:], strict=False)]
    assert beats and all(HEARTBEAT_S <= g < HEARTBEAT_S + MAX_SLEEP_S + 0.3 for g in gaps)
    assert [p for _, p in beats] == sorted(p for _, p in beats)
    assert bucket.passed_bytes == 20 * 512 and beats[-1][1] <= bucket.passed_bytes
    unlimited = make(0, clock)
    unlimited.on_paced = lambda passed: beats.append((clock.now, -1))
    unlimited.consume(10_000_000)
    assert beats[-1][1] != -1  # nothing paced, no heartbeat
