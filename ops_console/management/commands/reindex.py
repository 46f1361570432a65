from django.core.management.base import BaseCommand, CommandError

from ops_console.maintenance import tenant_or_error
from search import indexes, tenant_indexes


class Command(BaseCommand):
    help = (
        "Build the missing per-tenant indexes (an HNSW index over the vectors, a GIN index over their attributes), "
        "drop the obsolete ones and rebuild the outdated or invalid "
        "ones (what beat does every SEARCH_INDEX_SYNC_SECONDS), without blocking searches or writes. --rebuild: also "
        "rebuild the others in place (REINDEX INDEX CONCURRENTLY). --tenant: that tenant's indexes only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Also rebuild the kept indexes in place.")
        parser.add_argument("--tenant", help="Only this tenant's indexes (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Print the statements; run nothing.")

    def handle(self, *args, rebuild, tenant, dry_run, **options):
        found = tenant_or_error(tenant)
        tenant_id = found.pk if found else None
        if dry_run:
            todo, statements = tenant_indexes.planned_statements(tenant_id, rebuild=rebuild)
            for statement in statements:
                self.stdout.write(statement + ";")
            self.stdout.write(
                f"-- tenant indexes: {len(todo.create)} to build, {len(todo.drop)} to drop, {todo.kept} kept"
            )
            return
        try:
            indexes.ensure_outside_transaction()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        result = tenant_indexes.sync(tenant_id=tenant_id, rebuild=rebuild, progress=self._say)
        if result.skipped:
            raise CommandError("Another sync of the tenant indexes is running (beat or a command): try again later.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant indexes: {len(result.created)} built, {len(result.dropped)} dropped, {result.kept} kept"
                + (", the kept ones rebuilt." if rebuild else ".")
            )
        )

    def _say(self, line: str) -> None:
        self.stdout.write(f"  {line}")
