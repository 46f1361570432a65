"""Prometheus metrics. Request counts and latencies are counted in each web
process; pipeline figures (media by status, queue depth, processing times,
embedding throughput) are read from the database and Redis at scrape time, so
they are right whichever process did the work."""

from __future__ import annotations

import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from catalog.models import EMBEDDING_TABLE, MEDIA_TABLE, Media
from config.replicas import SEARCH_READS
from search.search_log import SEARCHES, ZERO_RESULT_SEARCHES

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("stockmind_http_requests", "HTTP requests served.", ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "stockmind_http_request_duration_seconds",
    "Time to serve an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
PROCESSING_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
THROUGHPUT_WINDOW = timedelta(minutes=1)


class PipelineCollector:
    def describe(self):
        # Names only: registering the collector must not touch the database.
        yield GaugeMetricFamily("stockmind_media", "Media items by status.", labels=["status"])
        yield GaugeMetricFamily("stockmind_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
        yield HistogramMetricFamily("stockmind_media_processing_seconds", "Time from claim to ready.", labels=[])
        yield GaugeMetricFamily("stockmind_embeddings_per_second", "Embeddings written per second.")

    def collect(self):
        yield from self._media_by_status()
        yield self._queue_depth()
        yield self._processing_seconds()
        yield self._embeddings_per_second()

    def _media_by_status(self):
        family = GaugeMetricFamily("stockmind_media", "Media items by status.", labels=["status"])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status, count(*) FROM {MEDIA_TABLE} GROUP BY status")  # noqa: S608 - a constant
            counts = dict(cursor.fetchall())
        for status in Media.Status.values:
            family.add_metric([status], counts.get(status, 0))
        yield family

    def _queue_depth(self):
        from ops_console.dashboard import queue_depths

        family = GaugeMetricFamily("stockmind_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
        for queue, depth in queue_depths().items():
            if depth is not None:  # no sample while the broker is down, which /health/ready reports
                family.add_metric([queue], depth)
        return family

    def _processing_seconds(self):
        bounds = ", ".join(f"count(*) FILTER (WHERE seconds <= {bound})" for bound in PROCESSING_BUCKETS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT {bounds}, count(*), COALESCE(sum(seconds), 0) FROM (
                        SELECT EXTRACT(EPOCH FROM processed_at - processing_started_at) AS seconds
                        FROM {MEDIA_TABLE}
                        WHERE status = 'ready' AND processed_at IS NOT NULL AND processing_started_at IS NOT NULL
                    ) AS done"""  # noqa: S608 - bounds are constants
            )
            row = cursor.fetchone()
        buckets = [(str(float(bound)), row[i]) for i, bound in enumerate(PROCESSING_BUCKETS)]
        buckets.append(("+Inf", row[len(PROCESSING_BUCKETS)]))
        return HistogramMetricFamily(
            "stockmind_media_processing_seconds",
            "Time from claim to ready of processed media.",
            buckets=buckets,
            sum_value=float(row[-1]),
        )

    def _embeddings_per_second(self):
        since = timezone.now() - THROUGHPUT_WINDOW
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {EMBEDDING_TABLE} WHERE created_at >= %s", [since])  # noqa: S608
            recent = cursor.fetchone()[0]
        return GaugeMetricFamily(
            "stockmind_embeddings_per_second",
            "Embeddings written per second over the last minute.",
            value=recent / THROUGHPUT_WINDOW.total_seconds(),
        )


REGISTRY.register(PipelineCollector())
REGISTRY.register(SEARCH_READS)  # searches by the database that served them (config/replicas.py)
REGISTRY.register(SEARCHES)  # searches and those that found nothing, by kind (search/search_log.py)
REGISTRY.register(ZERO_RESULT_SEARCHES)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The route pattern, not the path: ids must not become label values.
        route = match.route.replace("^", "").replace("$", "") if match is not None else "unmatched"
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response
