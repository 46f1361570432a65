import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from catalog.demo import DEMO_TENANT, load_sample_catalog
from catalog.models import ApiKey, Tenant
from search.models import Thresholds

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the demo tenant, an admin user and a small sample catalog; print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000", help="Port the demo serves on, for the printed URLs.")

    def handle(self, *args, port: str, **options):
        tenant, _ = Tenant.objects.get_or_create(slug=DEMO_TENANT, defaults={"name": "Demo Store"})
        Thresholds.for_tenant(tenant)
        _, api_key = ApiKey.issue(tenant, name="demo key", scope=ApiKey.Scope.WRITE)

        results = load_sample_catalog(tenant)
        added = sum(result.created for result in results)
        self.stdout.write(
            f"Sample catalog: {len(results)} images of {len(results) // 3} products "
            f"({added} new, {len(results) - added} already there)."
        )

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
