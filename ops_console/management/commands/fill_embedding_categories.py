from django.core.management.base import BaseCommand

from catalog.batches import scoped
from catalog.models import Embedding
from ops_console.maintenance import DEFAULT_BATCH_SIZE, run_in_batches, tenant_or_error


class Command(BaseCommand):
    help = (
        "Give the vectors stored before catalog migration 0010 their product's category, in batches (each its own "
        "short transaction): searches and writes go on, an interrupted run loses nothing and a rerun carries on. "
        "Until a tenant's vectors are all filled, its category filter goes through the product (same results, "
        "slower on a large tenant). Each updated vector is written again into its HNSW indexes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's vectors (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count the vectors left to fill; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        unfilled = scoped(Embedding.objects.filter(category__isnull=True), tenant_or_error(tenant))
        if dry_run:
            self.stdout.write(f"{unfilled.count()} vectors have no category yet (dry run).")
            return

        def fill(ids: list[int]) -> int:
            # '' makes the database trigger set the product's category.
            return Embedding.objects.filter(pk__in=ids, category__isnull=True).update(category="")

        done = run_in_batches(unfilled, batch_size, fill, self.stdout, "Filling vector categories", unit="vectors")
        self.stdout.write(self.style.SUCCESS(f"Filled the category of {done} vectors."))
