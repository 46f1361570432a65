import os
import secrets
import signal
import subprocess
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from catalog.demo import DEMO_TENANT, load_sample_catalog
from catalog.models import ApiKey, Media, Tenant, VideoFrame
from config.celery import worker_argv
from search.models import Thresholds

ADMIN_USERNAME = "admin"
# The tiny random model scores unrelated pictures 0.95 alike on average, where
# real CLIP weights keep the default (0.95) meaningful; the demo tenant starts
# with a threshold on the tiny model's scale, editable in the admin.
DEMO_NEAR_DUPLICATE_SIMILARITY = 0.995
INGEST_TIMEOUT_S = 600
POLL_INTERVAL_S = 0.5


class Command(BaseCommand):
    help = "Create the demo tenant, an admin user and a small sample catalog; print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000", help="Port the demo serves on, for the printed URLs.")
        parser.add_argument(
            "--ingest",
            action="store_true",
            help="Start a Celery worker and wait, showing progress, until every sample is processed.",
        )

    def handle(self, *args, port: str, ingest: bool, **options):
        tenant, created = Tenant.objects.get_or_create(slug=DEMO_TENANT, defaults={"name": "Demo Store"})
        thresholds = Thresholds.for_tenant(tenant)
        if created:
            thresholds.near_duplicate_similarity = DEMO_NEAR_DUPLICATE_SIMILARITY
            thresholds.save()
        _, api_key = ApiKey.issue(tenant, name="demo key", scope=ApiKey.Scope.WRITE)

        results = load_sample_catalog(tenant)
        added = sum(result.created for result in results)
        products = len({result.media.product_id for result in results})
        self.stdout.write(
            f"Sample catalog: {len(results)} media of {products} products "
            f"({added} new, {len(results) - added} already there)."
        )
        if ingest:
            self._ingest(tenant, results)
            self._show_searches(tenant)

        # A fresh password on every run: nothing to remember, nothing stale in a file.
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user = user_model.objects.filter(username=ADMIN_USERNAME).first() or user_model(username=ADMIN_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

        base = f"http://127.0.0.1:{port}"
        self.stdout.write(self.style.SUCCESS("\nStock Mind demo is ready."))
        self.stdout.write(f"  Admin:    {base}/admin/   user '{ADMIN_USERNAME}'   password '{password}'")
        self.stdout.write(f"  API key:  {api_key}   (tenant '{tenant.slug}', write scope)")
        self.stdout.write(f"  API docs: {base}/api/docs/")
        self.stdout.write(f"  Try:      curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/products/")

    def _ingest(self, tenant: Tenant, results) -> None:
        """Process the samples through a real worker, showing progress."""
        from media_pipeline.lifecycle import requeue

        # New samples are queued already; those of an earlier run that never
        # became ready go through again.
        media_ids = [result.media.pk for result in results]
        earlier = [result.media.pk for result in results if not result.created]
        requeue(Media.objects.filter(pk__in=earlier).exclude(status=Media.Status.READY))
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            worker_argv([settings.QUEUE_MEDIA, settings.QUEUE_MAINTENANCE], loglevel="WARNING"),
            env=os.environ.copy(),
            start_new_session=True,
        )
        self.stdout.write(f"Ingesting {len(media_ids)} media through a Celery worker (pid {worker.pid})...")
        try:
            self._wait(media_ids, worker)
        finally:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task in hand
            worker.wait(timeout=60)
        self._summary(tenant)

    def _wait(self, media_ids: list[int], worker: subprocess.Popen) -> None:
        deadline, last = time.monotonic() + INGEST_TIMEOUT_S, None
        while True:
            counts = dict(
                Media.objects.filter(pk__in=media_ids)
                .values_list("status")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
            done = counts.get(Media.Status.READY, 0) + counts.get(Media.Status.FAILED, 0)
            line = (
                f"  {done}/{len(media_ids)} processed: {counts.get(Media.Status.READY, 0)} ready, "
                f"{counts.get(Media.Status.FAILED, 0)} failed, {counts.get(Media.Status.PROCESSING, 0)} processing, "
                f"{counts.get(Media.Status.PENDING, 0)} waiting"
            )
            if line != last:
                self.stdout.write(line)
                last = line
            if done == len(media_ids):
                return
            if worker.poll() is not None:
                raise CommandError(f"The worker stopped (exit code {worker.returncode}); see its output above.")
            if time.monotonic() > deadline:
                raise CommandError(f"Ingest did not finish within {INGEST_TIMEOUT_S} s.")
            time.sleep(POLL_INTERVAL_S)

    def _show_searches(self, tenant: Tenant) -> None:
        """One image, one text and one 'more like this' search, as a client would see them."""
        import io

        from PIL import Image

        from catalog.demo import SAMPLE_PRODUCTS, product_image
        from search import service

        sample = SAMPLE_PRODUCTS[1]
        photo = Image.open(io.BytesIO(product_image(sample, 0)))
        w, h = photo.size
        altered = io.BytesIO()
        photo.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(altered, format="JPEG", quality=60)
        video = Media.objects.filter(tenant=tenant, kind=Media.Kind.VIDEO, status=Media.Status.READY).first()

        searches = [
            (
                f"image: a photo of {sample.sku}, cropped and recompressed",
                service.image_vector(altered, altered.getbuffer().nbytes),
                None,
            ),
            ("text: 'red suede sneaker'", service.text_vector("red suede sneaker"), None),
        ]
        if video is not None:
            searches.append((f"similar to video media {video.pk}", service.media_vector(video), video.pk))
        for title, vector, exclude in searches:
            found = service.search(tenant, vector, k=5, min_score=0.0, exclude_media_id=exclude)
            self.stdout.write(f"\nSearch by {title} ({found.took_ms:.1f} ms, model {found.model})")
            self.stdout.write("  rank  score   product       media  kind   frame")
            for rank, entry in enumerate(found.results, 1):
                sku = entry.product.sku if entry.product else "(unassigned)"
                frame = f"{entry.frame.timestamp_ms / 1000:.1f} s" if entry.frame else "-"
                self.stdout.write(
                    f"  {rank:>4}  {entry.score:.3f}  {sku:<12}  {entry.media.pk:>5}  {entry.media.kind:<5}  {frame}"
                )
        self.stdout.write("  (the demo's tiny random model is not semantic: scores are real, meanings are not)")

    def _summary(self, tenant: Tenant) -> None:
        rows = (
            Media.objects.filter(tenant=tenant)
            .values("kind", "status")
            .annotate(n=Count("pk"))
            .order_by("kind", "status")
        )
        self.stdout.write("\n  kind    status      count")
        for row in rows:
            self.stdout.write(f"  {row['kind']:<7} {row['status']:<11} {row['n']:>5}")
        frames = VideoFrame.objects.filter(tenant=tenant).count()
        duplicates = Media.objects.filter(tenant=tenant, duplicate_of__isnull=False).count()
        self.stdout.write(f"  video frames kept: {frames}; near-duplicate images linked: {duplicates}")
        for media in Media.objects.filter(tenant=tenant, status=Media.Status.FAILED)[:10]:
            self.stdout.write(self.style.WARNING(f"  failed: media {media.pk}: {media.error}"))
