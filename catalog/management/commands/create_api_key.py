from django.core.management.base import BaseCommand, CommandError

from catalog.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Issue an API key for a tenant and print it (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.READ)
        parser.add_argument("--name", default="", help="What the key is for (defaults to '<scope> key').")

    def handle(self, *args, slug: str, scope: str, name: str, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant '{slug}'.")
        key, plaintext = ApiKey.issue(tenant, name=name or f"{scope} key", scope=scope)
        self.stdout.write(self.style.SUCCESS(f"Issued {scope} key {key.prefix} for '{tenant.slug}'."))
        self.stdout.write("API key (copy it now, it is not shown again):")
        self.stdout.write(plaintext)
        if not tenant.is_active:
            self.stderr.write(
                self.style.WARNING(f"Tenant '{slug}' is inactive: its keys are refused until it is reactivated.")
            )
