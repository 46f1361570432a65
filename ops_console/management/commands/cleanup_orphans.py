from django.core.management.base import BaseCommand

from ops_console import repairs
from ops_console.maintenance import DEFAULT_BATCH_SIZE, progress_bar, tenant_or_error

# (what was found, the repair, what is done to what it finds, what is walked)
REPAIRS = [
    ("Orphan files", repairs.delete_orphan_files, "deleted", "files"),
    ("Media whose file is gone", repairs.fail_missing_files, "failed", "media"),
    ("Media with missing thumbnails", repairs.reprocess_missing_thumbnails, "reprocessed", "media"),
    ("Vectors and frames left on failed media", repairs.delete_leftovers_of_failed, "deleted", "media"),
    ("Vectors whose product differs from their media's", repairs.realign_vector_products, "re-aligned", "media"),
]


class Command(BaseCommand):
    help = (
        "Repair what lost its counterpart: delete stored files no row refers to (older than an hour), fail "
        "media whose file is gone, reprocess media whose thumbnails are gone, drop vectors and frames "
        "left on failed media, and re-align vectors whose product differs from their media's. (Vectors and "
        "frames cannot outlive their media: the database cascades those deletions.)"
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's files and media (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        tenant = tenant_or_error(tenant)
        for what, repair, verb, unit in REPAIRS:
            with progress_bar(self.stdout, None, f"Checking: {what.lower()}", unit=unit) as bar:

                def show(done: int, total: int | None, bar=bar) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                count = repair(tenant, dry_run=dry_run, batch_size=batch_size, progress=show)
            self.stdout.write(f"{what}: {count} {'would be ' if dry_run else ''}{verb}.")
