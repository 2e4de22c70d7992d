"""``GET /metrics`` (docs/operations.rst): Prometheus text format from a per-app registry.

Gauges (exports and jobs by status, recorder up and bytes) are read from engine and archive
state at scrape time by a custom collector; counters and histograms for requests and export
jobs are updated as things happen (the access-log middleware, the engine's job hook).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

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


class Metrics:
    """One app's metrics; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "sense_http_requests", "HTTP requests answered, by command and result code",
            ["command", "errorcode"], registry=self.registry)
        self.http_seconds = Histogram(
            "sense_http_request_seconds", "Time to answer an HTTP request, by command",
            ["command"], buckets=REQUEST_SECONDS_BUCKETS, registry=self.registry)
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
