from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from catalog.models import Media, VideoFrame
from ops_console.maintenance import DEFAULT_BATCH_SIZE, id_batches, scoped, tenant_or_error

# A file this young may belong to an upload whose row is not committed yet.
GRACE = timedelta(hours=1)
MISSING = "The stored file is missing."


def walk(prefix: str):
    """Every stored key under `prefix` (recursively)."""
    directories, files = default_storage.listdir(prefix)
    for name in files:
        yield f"{prefix}{name}"
    for directory in directories:
        yield from walk(f"{prefix}{directory}/")


class Command(BaseCommand):
    help = (
        "Delete stored files no row refers to (older than an hour), and fail media whose file is gone. "
        "Embeddings and frames cannot outlive their media: the database cascades those deletions."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's files and media (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        tenant = tenant_or_error(tenant)
        self._orphan_files(tenant, dry_run)
        self._missing_files(tenant, dry_run, batch_size)

    def _orphan_files(self, tenant, dry_run: bool) -> None:
        prefix = f"clients/{tenant.slug}/" if tenant else "clients/"
        try:
            stored = list(walk(prefix))
        except FileNotFoundError:  # nothing stored under the prefix yet
            stored = []
        known = set(scoped(Media.objects.all(), tenant).values_list("storage_key", flat=True))
        frames = VideoFrame.objects.all() if tenant is None else VideoFrame.objects.filter(tenant=tenant)
        known |= set(frames.values_list("thumbnail_key", flat=True))
        cutoff = timezone.now() - GRACE
        orphans = [key for key in stored if key not in known and default_storage.get_modified_time(key) < cutoff]
        if not dry_run:
            for key in orphans:
                default_storage.delete(key)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"Orphan files: {len(orphans)} {verb}.")

    def _missing_files(self, tenant, dry_run: bool, batch_size: int) -> None:
        candidates = scoped(Media.objects.exclude(status=Media.Status.FAILED), tenant)
        missing = 0
        for ids in id_batches(candidates, batch_size):
            gone = [
                pk
                for pk, key in Media.objects.filter(pk__in=ids).values_list("pk", "storage_key")
                if not default_storage.exists(key)
            ]
            missing += len(gone)
            if gone and not dry_run:
                # Not those being processed: their worker records the failure itself.
                Media.objects.filter(pk__in=gone).exclude(status=Media.Status.PROCESSING).update(
                    status=Media.Status.FAILED, error=MISSING, processed_at=timezone.now(), claim_token=""
                )
        verb = "would be failed" if dry_run else "failed"
        self.stdout.write(f"Media whose file is gone: {missing} {verb}.")
