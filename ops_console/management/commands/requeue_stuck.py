from django.core.management.base import BaseCommand
from django.utils import timezone

from catalog.batches import scoped
from catalog.models import Media
from media_pipeline.sweeper import fail_stuck, requeue_stuck
from ops_console.maintenance import DEFAULT_BATCH_SIZE, run_in_batches, tenant_or_error


class Command(BaseCommand):
    help = (
        "Requeue media stuck in processing longer than their tenant's threshold (as the sweeper does); "
        "those out of attempts are failed with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's media (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count what is stuck; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        now = timezone.now()
        stuck = scoped(Media.objects.stuck(now), tenant_or_error(tenant))
        if dry_run:
            self.stdout.write(f"{stuck.count()} media are stuck (dry run).")
            return
        counts = {"requeued": 0, "failed": 0}

        def settle(ids: list[int]) -> int:
            counts["requeued"] += requeue_stuck(ids, now)
            counts["failed"] += fail_stuck(ids, now)
            return len(ids)

        run_in_batches(
            Media.objects.filter(pk__in=stuck.values("pk")), batch_size, settle, self.stdout, "Settling stuck media"
        )
        self.stdout.write(self.style.SUCCESS(f"Requeued {counts['requeued']}, failed {counts['failed']}."))
