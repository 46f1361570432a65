from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Count
from django.utils import timezone

from catalog.models import Media
from media_pipeline.sweeper import stuck_media
from ops_console.maintenance import scoped, tenant_or_error

TOP_REASONS = 5


class Command(BaseCommand):
    help = "The pipeline's figures in the terminal: media by status, stuck, top failure reasons, queue depth."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args, tenant, **options):
        tenant = tenant_or_error(tenant)
        media = scoped(Media.objects.all(), tenant)
        counts = dict(media.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        self.stdout.write(f"Media{' of ' + tenant.slug if tenant else ''}:")
        for status in Media.Status.values:
            self.stdout.write(f"  {status:<11} {counts.get(status, 0):>8}")
        self.stdout.write(f"  {'stuck':<11} {scoped(stuck_media(timezone.now()), tenant).count():>8}")
        reasons = (media.filter(status=Media.Status.FAILED).values("error").annotate(n=Count("pk")).order_by("-n"))[
            :TOP_REASONS
        ]
        if reasons:
            self.stdout.write("Top failure reasons:")
            for row in reasons:
                self.stdout.write(f"  {row['n']:>6}  {row['error'][:100]}")
        self.stdout.write(f"Queue depth: {self._queue_depth()}")

    def _queue_depth(self) -> str:
        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            return ", ".join(
                f"{queue} {client.llen(queue)}" for queue in (settings.QUEUE_MEDIA, settings.QUEUE_MAINTENANCE)
            )
        except redis.exceptions.RedisError as exc:
            return f"unknown (Redis: {exc})"
        finally:
            client.close()
