import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from catalog.models import ApiKey, Media, Tenant, VideoFrame
from ops_console import demo

ADMIN_USERNAME = "admin"


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
        tenant = demo.demo_tenant()
        _, api_key = ApiKey.issue(tenant, name="demo key", scope=ApiKey.Scope.WRITE)

        try:
            sent = demo.load_products(api_key)
        except demo.IngestFailed as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Sample products through POST /api/v1/products/bulk: {sent['created']} created, "
            f"{sent['updated']} updated, {sent['unchanged']} unchanged."
        )
        results = demo.load_sample_catalog(tenant)
        added = sum(result.created for result in results)
        products = len({result.media.product_id for result in results})
        self.stdout.write(
            f"Sample catalog: {len(results)} media of {products} products "
            f"({added} new, {len(results) - added} already there)."
        )
        if ingest:
            try:
                demo.ingest(results, self.stdout.write)
            except demo.IngestFailed as exc:
                raise CommandError(str(exc)) from exc
            self._summary(tenant)
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

    def _show_searches(self, tenant: Tenant) -> None:
        for search in demo.sample_searches(tenant):
            found = search.found
            self.stdout.write(f"\nSearch by {search.title} ({found.took_ms:.1f} ms, model {found.model})")
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
        self.stdout.write(f"  video frames kept: {frames}")
        tiers = dict(
            Media.objects.filter(tenant=tenant, duplicate_of__isnull=False)
            .values_list("duplicate_kind")
            .annotate(n=Count("pk"))
        )
        self.stdout.write(
            f"  duplicates: {tiers.get(Media.DuplicateKind.EXACT, 0)} exact (same bytes), "
            f"{tiers.get(Media.DuplicateKind.NEAR_IDENTICAL, 0)} near-identical (the same picture re-encoded, "
            f"resized or cropped: the demo uploads {len(demo.COPY_NAMES)} such copies on purpose), "
            f"{tiers.get(Media.DuplicateKind.SIMILAR, 0)} similar by CLIP"
        )
        self.stdout.write(
            "  (the demo's tiny random model scores unrelated pictures about 0.95 alike, so its 'similar' pairs "
            "mean nothing; exact and near-identical do not depend on the model. Side by side: "
            "/admin/ops_console/duplicatemedia/)"
        )
        for media in Media.objects.failed().filter(tenant=tenant)[:10]:
            self.stdout.write(self.style.WARNING(f"  failed: media {media.pk}: {media.error}"))
