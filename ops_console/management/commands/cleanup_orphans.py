from datetime import timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from catalog.batches import id_batches, scoped
from catalog.models import Media, VideoFrame
from catalog.storage_keys import delete_files_on_commit
from media_pipeline.lifecycle import back_to_pending
from ops_console.maintenance import DEFAULT_BATCH_SIZE, progress_bar, tenant_or_error
from search.models import Embedding

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
        "Repair what lost its counterpart: delete stored files no row refers to (older than an hour), fail "
        "media whose file is gone, reprocess videos whose frame thumbnails are gone, drop vectors and frames "
        "left on failed media, and re-align vectors whose product differs from their media's. (Vectors and "
        "frames cannot outlive their media: the database cascades those deletions.)"
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant's files and media (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, tenant, dry_run, batch_size, **options):
        tenant = tenant_or_error(tenant)
        self._orphan_files(tenant, dry_run)
        self._missing_files(tenant, dry_run, batch_size)
        self._missing_thumbnails(tenant, dry_run, batch_size)
        self._leftovers_of_failed(tenant, dry_run)
        self._misaligned_products(tenant, dry_run)

    def _report(self, what: str, count: int, dry_run: bool, verb: str) -> None:
        self.stdout.write(f"{what}: {count} {'would be ' if dry_run else ''}{verb}.")

    def _orphan_files(self, tenant, dry_run: bool) -> None:
        prefix = f"clients/{tenant.slug}/" if tenant else "clients/"
        try:
            stored = list(walk(prefix))
        except FileNotFoundError:  # nothing stored under the prefix yet
            stored = []
        known = set(scoped(Media.objects.all(), tenant).values_list("storage_key", flat=True))
        frames = scoped(VideoFrame.objects.all(), tenant)
        known |= set(frames.values_list("thumbnail_key", flat=True))
        cutoff = timezone.now() - GRACE
        orphans = [key for key in stored if key not in known and default_storage.get_modified_time(key) < cutoff]
        if not dry_run:
            with progress_bar(self.stdout, len(orphans), "Deleting orphan files", unit="files") as bar:
                for key in orphans:
                    default_storage.delete(key)
                    bar.update(1)
        self._report("Orphan files", len(orphans), dry_run, "deleted")

    def _missing_files(self, tenant, dry_run: bool, batch_size: int) -> None:
        candidates = scoped(Media.objects.exclude(status=Media.Status.FAILED), tenant)
        missing = 0
        with progress_bar(self.stdout, candidates.count(), "Checking media files") as bar:
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
                bar.update(len(ids))
        self._report("Media whose file is gone", missing, dry_run, "failed")

    def _missing_thumbnails(self, tenant, dry_run: bool, batch_size: int) -> None:
        videos = scoped(Media.objects.filter(kind=Media.Kind.VIDEO, status=Media.Status.READY), tenant)
        broken = []
        with progress_bar(self.stdout, videos.count(), "Checking frame thumbnails") as bar:
            for ids in id_batches(videos, batch_size):
                keys = VideoFrame.objects.filter(media_id__in=ids).exclude(thumbnail_key="")
                broken += sorted(
                    {
                        media_id
                        for media_id, key in keys.values_list("media_id", "thumbnail_key")
                        if not default_storage.exists(key)
                    }
                )
                bar.update(len(ids))
        if broken and not dry_run:
            # Processing the video again writes its thumbnails again.
            back_to_pending(Media.objects.filter(pk__in=broken, status=Media.Status.READY))
        self._report("Videos with missing frame thumbnails", len(broken), dry_run, "reprocessed")

    def _leftovers_of_failed(self, tenant, dry_run: bool) -> None:
        failed = scoped(Media.objects.filter(status=Media.Status.FAILED), tenant)
        vectors = Embedding.objects.filter(media__in=failed)
        frames = VideoFrame.objects.filter(media__in=failed)
        counts = (vectors.count(), frames.count())
        if not dry_run:
            with transaction.atomic():
                delete_files_on_commit(frames.values_list("thumbnail_key", flat=True))
                vectors.delete()
                frames.delete()
        self._report("Vectors and frames left on failed media", sum(counts), dry_run, "deleted")

    def _misaligned_products(self, tenant, dry_run: bool) -> None:
        # NULL-safe "differs": one side set and the other not, or both set apart.
        differs = (
            Q(product__isnull=True, media__product__isnull=False)
            | Q(product__isnull=False, media__product__isnull=True)
            | (Q(product__isnull=False, media__product__isnull=False) & ~Q(product_id=F("media__product_id")))
        )
        ids = list(scoped(Embedding.objects.filter(differs), tenant).values_list("pk", flat=True))
        if ids and not dry_run:
            media_product = Media.objects.filter(pk=OuterRef("media_id")).values("product_id")[:1]
            Embedding.objects.filter(pk__in=ids).update(product_id=Subquery(media_product))
        self._report("Vectors whose product differs from their media's", len(ids), dry_run, "re-aligned")
