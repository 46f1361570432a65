from django.core.management.base import BaseCommand
from django.db.models import BigIntegerField, F, Func, Q

from catalog.batches import scoped
from catalog.models import Embedding
from ops_console.maintenance import DEFAULT_BATCH_SIZE, run_in_batches, tenant_or_error

# A value out of the row up to this size fits in it beside the 2 kB vector
# (catalog migration 0016); a larger one stays out (PostgreSQL's last resort
# for a row that would not fit its page), and is not written again each run.
FITS_IN_ROW_BYTES = 4096


def _storage(field: str) -> dict[str, Func]:
    """Annotations: the TOAST chunk of the row's value of `field` (NULL when in the row) and its stored size."""
    return {
        f"{field}_chunk": Func(F(field), function="pg_column_toast_chunk_id", output_field=BigIntegerField()),
        f"{field}_size": Func(F(field), function="pg_column_size", output_field=BigIntegerField()),
    }


def _out_of_row(field: str) -> Q:
    """The row keeps its value of `field` out of the row (TOAST), where it need not."""
    return Q(**{f"{field}_chunk__isnull": False, f"{field}_size__lte": FITS_IN_ROW_BYTES})


class Command(BaseCommand):
    help = (
        "Give the vectors stored before catalog migrations 0010 and 0015 their product's category and attributes, "
        "and move those stored before migration 0016 out of the row back into it, in batches (each its own short "
        "transaction): searches and writes go on, an interrupted run loses nothing and a rerun carries on. Until a "
        "tenant's vectors are all filled, its category and attribute filters go through the product (same results, "
        "slower on a large tenant); a value out of the row costs a filter two more page reads. Each updated vector "
        "is written again into its HNSW indexes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's vectors (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count the vectors left to fill; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        to_write = Q(category__isnull=True) | Q(attributes__isnull=True)
        to_write |= _out_of_row("attributes") | _out_of_row("category")
        rows = Embedding.objects.annotate(**_storage("attributes"), **_storage("category"))
        unfilled = scoped(rows.filter(to_write), tenant_or_error(tenant))
        if dry_run:
            self.stdout.write(
                f"{unfilled.count()} vectors have no category or attributes yet, or keep them out of the row (dry run)."
            )
            return

        def fill(ids: list[int]) -> int:
            # Writing the category makes the database trigger set both from the product, into the row.
            return Embedding.objects.filter(pk__in=rows.filter(to_write, pk__in=ids).values("pk")).update(category="")

        done = run_in_batches(unfilled, batch_size, fill, self.stdout, "Filling vector categories", unit="vectors")
        self.stdout.write(self.style.SUCCESS(f"Filled the category and attributes of {done} vectors."))
