from django.core.management.base import BaseCommand

from catalog.models import Media
from ops_console.dashboard import Figures, build_dashboard, failure_reasons
from ops_console.maintenance import tenant_or_error
from ops_console.templatetags.humanize_ops import percent, seconds

TOP_REASONS = 5


class Command(BaseCommand):
    help = (
        "The dashboard's figures in the terminal: media by status, stuck, the last 24 hours' throughput, "
        "error rate and processing times, queues, workers, S3 events, top failure reasons, per tenant."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args, tenant, **options):
        tenant = tenant_or_error(tenant)
        dashboard = build_dashboard(tenant)
        self.stdout.write(f"Media{' of ' + tenant.slug if tenant else ''}:")
        self._figures(dashboard.figures)
        f = dashboard.figures
        self.stdout.write(
            f"Last 24 h: {f.ready_24h} ready, {f.failed_24h} failed, error rate {percent(f.error_rate)}, "
            f"processing time average {seconds(f.avg_seconds)}, p95 {seconds(f.p95_seconds)}"
        )
        peak = max((hour.ready + hour.failed for hour in dashboard.hours), default=0)
        if peak:
            self.stdout.write("Per hour (UTC):")
            for hour in dashboard.hours:
                bar = "#" * round(40 * (hour.ready + hour.failed) / peak)
                self.stdout.write(f"  {hour.hour:%H}:00 {hour.ready:>7} ready {hour.failed:>5} failed  {bar}")
        queues = ", ".join(
            f"{queue} {'unknown' if depth is None else depth}" for queue, depth in dashboard.queues.items()
        )
        self.stdout.write(f"Queue depth: {queues}")
        if dashboard.workers is None:
            self.stdout.write("Workers: unknown (the broker does not answer)")
        else:
            self.stdout.write(f"Workers alive: {len(dashboard.workers)} {', '.join(dashboard.workers)}".rstrip())
        if dashboard.sqs:
            sqs = dashboard.sqs
            self.stdout.write(
                f"S3 events: {sqs.error}"
                if sqs.error
                else f"S3 events: {sqs.queue_depth} waiting, {sqs.in_flight} in flight, "
                f"dead-letter queue {'none' if sqs.dead_letter_depth is None else sqs.dead_letter_depth}"
            )
        self.stdout.write(
            f"Rejected S3 events: {dashboard.rejected_events_24h} in 24 h, {dashboard.rejected_events_total} in all"
        )
        reasons = failure_reasons(tenant, TOP_REASONS)
        if reasons:
            self.stdout.write("Top failure reasons:")
            for reason, n in reasons:
                self.stdout.write(f"  {n:>6}  {reason}")
        if tenant is None and dashboard.tenants:
            self.stdout.write("Per tenant:")
            for row in dashboard.tenants:
                t = row.figures
                self.stdout.write(
                    f"  {row.tenant.slug:<20} "
                    + " ".join(f"{s} {t.by_status[s]}" for s in Media.Status.values)
                    + f" stuck {t.stuck} review {t.waiting_review} error rate {percent(t.error_rate)}"
                )
        problems = dashboard.problems
        self.stdout.write(
            self.style.ERROR(f"Needs attention: {'; '.join(problems)}.") if problems else self.style.SUCCESS("Healthy.")
        )

    def _figures(self, figures: Figures) -> None:
        for status in Media.Status.values:
            self.stdout.write(f"  {status:<11} {figures.by_status[status]:>8}")
        self.stdout.write(f"  {'stuck':<11} {figures.stuck:>8}")
        self.stdout.write(f"  {'review':<11} {figures.waiting_review:>8}")
