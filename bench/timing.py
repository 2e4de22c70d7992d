"""Latency of repeated calls for the benchmarks: each call timed in turn, p50/p99/max in ms."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def elapsed_ms(call: Callable[[], object]) -> float:
    """Wall time of one ``call()`` in milliseconds."""
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def timed_ms(call: Callable[[], object], count: int) -> list[float]:
    """Wall times in ms of ``count`` calls, one after another."""
    return [elapsed_ms(call) for _ in range(count)]


def summary(values_ms: list[float], digits: int = 2) -> dict[str, float]:
    """Count, median, p99 (nearest rank) and maximum of ``values_ms``."""
    ordered = sorted(values_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), digits),
            "p99_ms": round(p99, digits), "max_ms": round(ordered[-1], digits)}
