"""The pipeline's figures, overall and per tenant, for the admin dashboard and
`manage.py pipeline_status`.

Everything is aggregated in the database with a handful of grouped queries
that indexes serve (media by tenant and status; media processed in the last
24 hours through the covering `media_processed_at` index; stuck media through
`media_status_started`), so the page stays fast with millions of media
(bench/dashboard.py measures it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.db.models.functions import Left
from django.utils import timezone

from catalog.batches import scoped
from catalog.models import MEDIA_TABLE, Media, Tenant
from config.broker import broker_client
from config.queues import QUEUES
from media_pipeline.heartbeat import live_workers
from media_pipeline.models import RejectedS3Event
from search.models import RecognizerSuggestion

WINDOW = timedelta(hours=24)
BROKER_TIMEOUT_S = 1.0
# Above this share of failures among the items processed in the window, the
# dashboard asks for attention.
ERROR_RATE_ALERT = 0.1
# The per-tenant table shows the tenants with the most media first.
TENANT_ROWS = 100
# Failure reasons are grouped by their start, cut to this length: messages
# that differ only in a file name or a number further on fall in one group.
REASON_PREFIX = 120


@dataclass
class Throughput:
    """Items processed (ready or failed) in one hour of the window."""

    hour: datetime
    ready: int = 0
    failed: int = 0


@dataclass
class Figures:
    """The processing figures of one scope: everything, or one tenant."""

    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Media.Status.values, 0))
    stuck: int = 0
    ready_24h: int = 0
    failed_24h: int = 0
    avg_seconds: float | None = None
    p95_seconds: float | None = None
    waiting_review: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def error_rate(self) -> float | None:
        done = self.ready_24h + self.failed_24h
        return self.failed_24h / done if done else None


@dataclass
class TenantRow:
    tenant: Tenant
    figures: Figures


@dataclass
class SqsFigures:
    queue_depth: int | None = None
    in_flight: int | None = None
    dead_letter_depth: int | None = None
    error: str = ""


@dataclass
class Dashboard:
    generated_at: datetime
    tenant: Tenant | None
    figures: Figures
    hours: list[Throughput]
    queues: dict[str, int | None]
    workers: list[str] | None  # with a recent heartbeat; None: Redis does not answer
    tenants: list[TenantRow]
    tenant_count: int
    sqs: SqsFigures | None  # None: SQS is not configured
    rejected_events_24h: int
    rejected_events_total: int

    @property
    def problems(self) -> list[str]:
        """What an operator should look at, in words; empty when healthy."""
        found = []
        if self.workers is None:
            found.append("the broker (Redis) does not answer")
        elif not self.workers:
            found.append("no worker is alive")
        if self.figures.stuck:
            found.append(f"{self.figures.stuck} media stuck")
        rate = self.figures.error_rate
        if rate is not None and rate > ERROR_RATE_ALERT:
            found.append(f"{rate:.0%} of the last 24 hours' media failed")
        if self.sqs and self.sqs.dead_letter_depth:
            found.append(f"{self.sqs.dead_letter_depth} S3 events in the dead-letter queue")
        if self.sqs and self.sqs.error:
            found.append(f"SQS does not answer ({self.sqs.error})")
        return found


def _scoped(sql_where: str, tenant: Tenant | None, params: list) -> tuple[str, list]:
    if tenant is None:
        return sql_where, params
    return f"{sql_where} AND tenant_id = %s", [*params, tenant.pk]


def status_counts(tenant: Tenant | None = None) -> list[tuple[int, str, int]]:
    """(tenant id, status, count) of every media row, from the (tenant, status) index."""
    media = scoped(Media.objects.order_by(), tenant)
    # count(*), not count(id): the (tenant, status) index alone answers it.
    return list(media.values_list("tenant_id", "status").annotate(n=Count("*")))


def stuck_counts(now: datetime, tenant: Tenant | None = None) -> list[tuple[int, int]]:
    stuck = scoped(Media.objects.stuck(now).order_by(), tenant)
    return list(stuck.values_list("tenant_id").annotate(n=Count("pk")).values_list("tenant_id", "n"))


def review_counts(tenant: Tenant | None = None) -> list[tuple[int, int]]:
    suggestions = scoped(RecognizerSuggestion.objects.waiting().order_by(), tenant)
    return list(suggestions.values_list("tenant_id").annotate(n=Count("pk")))


def failure_reasons(tenant: Tenant | None = None, limit: int = 50) -> list[tuple[str, int]]:
    """(reason, count) of failed media, most frequent first. Reasons are
    grouped by their first REASON_PREFIX characters."""
    failed = scoped(Media.objects.failed(), tenant)
    rows = failed.annotate(reason=Left("error", REASON_PREFIX)).values("reason").annotate(n=Count("pk"))
    return [(row["reason"], row["n"]) for row in rows.order_by("-n", "reason")[:limit]]


def processing_times(now: datetime, tenant: Tenant | None = None) -> list[tuple[int | None, float, float]]:
    """(tenant id, average, p95) seconds from claim to ready in the window,
    per tenant and, under tenant id None, overall."""
    where, params = _scoped(
        "status = 'ready' AND processed_at >= %s AND processing_started_at IS NOT NULL", tenant, [now - WINDOW]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT tenant_id, avg(seconds), percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)
                FROM (SELECT tenant_id, EXTRACT(EPOCH FROM processed_at - processing_started_at) AS seconds
                      FROM {MEDIA_TABLE} WHERE {where}) AS done
                GROUP BY ROLLUP (tenant_id)""",  # noqa: S608 - `where` is built from constants
            params,
        )
        # With nothing in the window ROLLUP still gives its total row, empty.
        return [(tenant_id, float(avg), float(p95)) for tenant_id, avg, p95 in cursor.fetchall() if avg is not None]


def _figures_by_tenant(now: datetime, tenant: Tenant | None) -> dict[int | None, Figures]:
    """Figures per tenant id, and the total under None."""
    figures: dict[int | None, Figures] = defaultdict(Figures)
    for tenant_id, status, n in status_counts(tenant):
        figures[tenant_id].by_status[status] = n
        figures[None].by_status[status] += n
    for tenant_id, n in stuck_counts(now, tenant):
        figures[tenant_id].stuck = n
        figures[None].stuck += n
    for tenant_id, n in review_counts(tenant):
        figures[tenant_id].waiting_review = n
        figures[None].waiting_review += n
    # ROLLUP's total row has tenant_id NULL, the key of the total here too.
    for scope_id, avg, p95 in processing_times(now, tenant):
        figures[scope_id].avg_seconds, figures[scope_id].p95_seconds = avg, p95
    return figures


def hourly_throughput(now: datetime, tenant: Tenant | None = None) -> tuple[list[Throughput], dict[int, list[int]]]:
    """The window's hours, oldest first, with ready and failed counts; and
    per tenant id its [ready, failed] totals."""
    start = now.replace(minute=0, second=0, microsecond=0) - WINDOW + timedelta(hours=1)
    hours = {start + timedelta(hours=h): Throughput(start + timedelta(hours=h)) for h in range(24)}
    per_tenant: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    where, params = _scoped("processed_at >= %s AND status IN ('ready', 'failed')", tenant, [start])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT tenant_id, date_trunc('hour', processed_at), status, count(*) FROM {MEDIA_TABLE}
                WHERE {where} GROUP BY 1, 2, 3""",  # noqa: S608 - `where` is built from constants
            params,
        )
        for tenant_id, hour, status, n in cursor.fetchall():
            bucket = hours.get(hour)
            if bucket is None:  # processed_at in the future (clock skew): not in the chart
                continue
            setattr(bucket, status, getattr(bucket, status) + n)
            per_tenant[tenant_id][0 if status == Media.Status.READY else 1] += n
    return list(hours.values()), per_tenant


def queue_depths() -> dict[str, int | None]:
    """Tasks waiting in each Celery queue; None where Redis does not answer."""
    try:
        with broker_client(BROKER_TIMEOUT_S) as client:
            return {queue: client.llen(queue) for queue in QUEUES}
    except redis.exceptions.RedisError:
        return dict.fromkeys(QUEUES)


def sqs_figures() -> SqsFigures | None:
    """Depth of the S3 event queue and of its dead-letter queue, when SQS is configured."""
    if not settings.SQS_QUEUE_URL:
        return None
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    from catalog.aws import sqs_client

    figures = SqsFigures()
    client = sqs_client()
    try:
        attributes = client.get_queue_attributes(
            QueueUrl=settings.SQS_QUEUE_URL,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "RedrivePolicy"],
        )["Attributes"]
        figures.queue_depth = int(attributes.get("ApproximateNumberOfMessages", 0))
        figures.in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        if "RedrivePolicy" in attributes:
            dead_letter_arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
            _, _, _, _, account, name = dead_letter_arn.split(":", 5)
            url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            dead = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            figures.dead_letter_depth = int(dead["Attributes"].get("ApproximateNumberOfMessages", 0))
    except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
        figures.error = str(exc)
    return figures


def build_dashboard(tenant: Tenant | None = None, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    by_tenant = _figures_by_tenant(now, tenant)
    hours, processed = hourly_throughput(now, tenant)
    for tenant_id, (ready, failed) in processed.items():
        by_tenant[tenant_id].ready_24h, by_tenant[tenant_id].failed_24h = ready, failed
        by_tenant[None].ready_24h += ready
        by_tenant[None].failed_24h += failed
    total = by_tenant.pop(None, Figures())
    ranked = sorted(by_tenant.items(), key=lambda item: (-item[1].total, item[0]))[:TENANT_ROWS]
    tenants = Tenant.objects.in_bulk([tenant_id for tenant_id, _ in ranked])
    rejected = RejectedS3Event.objects.filter(tenant_slug=tenant.slug) if tenant else RejectedS3Event.objects.all()
    return Dashboard(
        generated_at=now,
        tenant=tenant,
        figures=total,
        hours=hours,
        queues=queue_depths(),
        workers=live_workers(),
        tenants=[TenantRow(tenants[tenant_id], figures) for tenant_id, figures in ranked if tenant_id in tenants],
        tenant_count=len(by_tenant),
        sqs=sqs_figures(),
        rejected_events_24h=rejected.filter(received_at__gte=now - WINDOW).count(),
        rejected_events_total=rejected.count(),
    )
