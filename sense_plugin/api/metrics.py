"""``GET /metrics`` (docs/operations.rst): Prometheus text format from a per-app registry.

Gauges (exports and jobs by status, recorder up and bytes) are read from engine and archive
state at scrape time by a custom collector; counters and histograms for export jobs are updated
as things happen (the engine's job hook). Requests are counted by the access-log middleware
into plain numbers (:class:`RequestStats`) that become metric families only when scraped: a
status poll is answered in a fraction of a millisecond, and prometheus_client's labelled
children (a look-up and a lock per update) were a tenth of that (docs/performance.rst).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import AsyncIterator, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sense_plugin.api.keys import ARCHIVE, AUTH, ENGINE
from sense_plugin.archive.service import Archive
from sense_plugin.export.custodystore import DeliveryStats
from sense_plugin.export.engine import ExportEngine
from sense_plugin.export.model import Job, Status
from sense_plugin.timestamps import now_us

#: Export jobs last from well under a second (small demo exports) to hours (capped, long).
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Command answers: mostly milliseconds; downloads stream for longer.
REQUEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                           10)


class RequestStats(Collector):
    """Requests by command and result code, and their answer times by command.

    Updated on the event loop for every request (plain integer and float additions) and read
    on the event loop when ``/metrics`` is scraped, so no lock is needed. Labels are bounded:
    commands are the registered names or a path's role, codes the result-code table.
    """

    def __init__(self, buckets_s: tuple[float, ...] = REQUEST_SECONDS_BUCKETS) -> None:
        self.buckets_s = buckets_s
        self.counts: dict[tuple[str, str], int] = {}
        #: command → per-bucket counts (the last one past every bound) and the sum of seconds
        self.times: dict[str, tuple[list[int], list[float]]] = {}

    def record(self, command: str, code: str, seconds: float) -> None:
        """One answered request."""
        key = (command, code)
        self.counts[key] = self.counts.get(key, 0) + 1
        times = self.times.get(command)
        if times is None:
            times = self.times[command] = ([0] * (len(self.buckets_s) + 1), [0.0])
        times[0][bisect_left(self.buckets_s, seconds)] += 1
        times[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            "sense_http_requests", "HTTP requests answered, by command and result code",
            labels=["command", "errorcode"])
        for (command, code), count in sorted(self.counts.items()):
            counts.add_metric([command, code], float(count))
        yield counts
        times = HistogramMetricFamily(
            "sense_http_request_seconds", "Time to answer an HTTP request, by command",
            labels=["command"])
        for command, (per_bucket, total_s) in sorted(self.times.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(floatToGoString, self.buckets_s), "+Inf"),
                                     per_bucket, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            times.add_metric([command], buckets, total_s[0])
        yield times


class Metrics:
    """One app's metrics; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestStats()
        self.registry.register(self.requests)
        self.export_bytes = Counter(
            "sense_export_bytes", "Bytes written by export jobs that ended",
            registry=self.registry)
        self.export_seconds = Histogram(
            "sense_export_seconds", "Wall time of export jobs that ended (start to end)",
            ["status"], buckets=JOB_SECONDS_BUCKETS, registry=self.registry)

    def job_finished(self, job: Job) -> None:
        """Engine hook: account for a job that reached an end (not one sent back to queue)."""
        if not job.terminal or job.started_us is None or job.finished_us is None:
            return
        self.export_bytes.inc(job.bytes_written)
        seconds = max(0, job.finished_us - job.started_us) / 1_000_000
        self.export_seconds.labels(str(job.status)).observe(seconds)

    def watch(self, engine: ExportEngine, archive: Archive) -> None:
        """Collect the state gauges from these at every scrape."""
        self.registry.register(StateCollector(engine, archive))


class StateCollector(Collector):
    """Exports and jobs by status, and each recorder's state, read when scraped."""

    def __init__(self, engine: ExportEngine, archive: Archive) -> None:
        self.engine = engine
        self.archive = archive

    def collect(self) -> Iterator[Metric]:
        book = self.engine.book
        yield _by_status("sense_exports", "Exports by combined status", book.export_counts)
        yield _by_status("sense_export_jobs", "Device jobs by status", book.job_counts)
        up = GaugeMetricFamily("sense_recorder_up", "1 while the recorder is recording",
                               labels=["deviceid"])
        written = CounterMetricFamily("sense_recorder_bytes", "Bytes of segments recorded",
                                      labels=["deviceid"])
        recorded = self.archive.recorded_bytes()
        for device_id, recorder in sorted(self.archive.recorders().items()):
            up.add_metric([str(device_id)], 1.0 if recorder.is_recording else 0.0)
            written.add_metric([str(device_id)], float(recorded.get(device_id, 0)))
        yield up
        yield written
        yield from callback_metrics(self.engine.custody.callbacks.stats)


METRICS = web.AppKey("metrics", Metrics)


def callback_metrics(stats: DeliveryStats) -> Iterator[Metric]:
    """Completion callbacks: delivered, failed attempts, waiting and the oldest's age."""
    yield CounterMetricFamily("sense_callback_deliveries", "Callbacks delivered (2xx)",
                              value=float(stats.delivered))
    yield CounterMetricFamily("sense_callback_failures", "Callback attempts that failed",
                              value=float(stats.failures))
    yield GaugeMetricFamily("sense_callback_pending", "Callbacks not delivered yet",
                            value=float(stats.pending))
    oldest_s = 0.0 if stats.oldest_created_us is None \
        else max(0, now_us() - stats.oldest_created_us) / 1_000_000
    yield GaugeMetricFamily("sense_callback_oldest_undelivered_seconds",
                            "Age of the oldest callback not delivered yet", value=oldest_s)


def _by_status(name: str, documentation: str, counts: Mapping[Status, int]) \
        -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in Status:
        family.add_metric([str(status)], float(counts.get(status, 0)))
    return family


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics``: authenticated like ``/command``; the Prometheus text format."""
    await request.app[AUTH].authenticate(request)
    registry = request.app[METRICS].registry
    await request.app[ENGINE].custody.callbacks.refresh_stats()
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup_metrics(app: web.Application) -> Metrics:
    """Create the app's metrics and the ``/metrics`` route; add :func:`metrics_ctx` to the
    cleanup contexts after the engine's."""
    metrics = Metrics()
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_handler)
    return metrics


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hook the metrics to the running engine and archive."""
    metrics, engine = app[METRICS], app[ENGINE]
    metrics.watch(engine, app[ARCHIVE])
    engine.on_job_finished.append(metrics.job_finished)
    yield
    engine.on_job_finished.remove(metrics.job_finished)
