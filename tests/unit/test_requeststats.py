"""Request metrics kept as plain numbers expose exactly what prometheus_client's own labelled
counter and histogram expose for the same requests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from sense_plugin.api.metrics import REQUEST_SECONDS_BUCKETS, RequestStats

REQUESTS = [("getExportVideoStatus", "0", 0.0004), ("getExportVideoStatus", "0", 0.001),
            ("getExportVideoStatus", "-57", 0.0031), ("exportVideo", "0", 0.2),
            ("exportVideo", "-22", 12.0), ("metrics", "-", 0.0025)]


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format's sample lines, without the ``_created`` times only the library's
    own metrics carry."""
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if line and not line.startswith("#") and "_created" not in line)


def test_the_same_samples_as_prometheus_client_for_the_same_requests() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    stats = RequestStats()
    ours.register(stats)
    counter = Counter("sense_http_requests", "HTTP requests answered, by command and result "
                      "code", ["command", "errorcode"], registry=theirs)
    histogram = Histogram("sense_http_request_seconds", "Time to answer an HTTP request, by "
                          "command", ["command"], buckets=REQUEST_SECONDS_BUCKETS,
                          registry=theirs)
    for command, code, seconds in REQUESTS:
        stats.record(command, code, seconds)
        counter.labels(command, code).inc()
        histogram.labels(command).observe(seconds)
    assert exposition(ours) == exposition(theirs)
    assert 'sense_http_request_seconds_bucket{command="getExportVideoStatus",le="0.001"} 2.0' \
        in exposition(ours)  # a time equal to a bound counts in that bucket
