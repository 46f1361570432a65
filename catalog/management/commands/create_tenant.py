from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from catalog.errors import Conflict
from catalog.models import ApiKey, Tenant
from catalog.tenants import create_tenant


class Command(BaseCommand):
    help = "Create a tenant and print a write API key for it (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="", help="Display name (defaults to the slug).")

    def handle(self, *args, slug: str, name: str, **options):
        try:
            with transaction.atomic():
                tenant = create_tenant(Tenant(slug=slug, name=name))
                _, plaintext = ApiKey.issue(tenant, name="initial write key", scope=ApiKey.Scope.WRITE)
        except (ValueError, Conflict) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Created tenant '{tenant.slug}' ({tenant.name})."))
        self.stdout.write("Write API key (copy it now, it is not shown again):")
        self.stdout.write(plaintext)
