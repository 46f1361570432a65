from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from catalog import transitions
from catalog.batches import scoped
from catalog.models import Media
from ops_console.maintenance import DEFAULT_BATCH_SIZE, run_in_batches, tenant_or_error


class Command(BaseCommand):
    help = "Queue failed media for processing again."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's media (slug).")
        parser.add_argument("--older-than", type=int, metavar="MINUTES", help="Only items that failed this long ago.")
        parser.add_argument("--error-contains", help="Only items whose reason contains this text.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be requeued; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, older_than, error_contains, dry_run, batch_size, **options):
        failed = scoped(Media.objects.failed(), tenant_or_error(tenant))
        if older_than:
            failed = failed.filter(processed_at__lt=timezone.now() - timedelta(minutes=older_than))
        if error_contains:
            failed = failed.filter(error__icontains=error_contains)
        if dry_run:
            self.stdout.write(f"Would requeue {failed.count()} failed media (dry run).")
            return

        def requeue(ids: list[int]) -> int:
            return len(transitions.back_to_pending(Media.objects.failed().filter(pk__in=ids)))

        done = run_in_batches(failed, batch_size, requeue, self.stdout, "Requeueing failed media")
        self.stdout.write(self.style.SUCCESS(f"Requeued {done} failed media."))
