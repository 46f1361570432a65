from django.core.management.base import BaseCommand, CommandError

from catalog.models import SHARED_INDEX_EF_CONSTRUCTION, SHARED_INDEX_M, SHARED_INDEX_NAME
from ops_console.maintenance import tenant_or_error
from search import indexes, tenant_indexes


class Command(BaseCommand):
    help = (
        "Rebuild the shared HNSW vector index without blocking searches (REINDEX INDEX CONCURRENTLY), or recreate "
        "it with other parameters (--rebuild --m --ef-construction); then build the missing per-tenant indexes "
        "and drop the obsolete ones (what beat does every SEARCH_INDEX_SYNC_SECONDS). With --tenant, that "
        "tenant's own index only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Drop and recreate with the given parameters.")
        parser.add_argument("--m", type=int, default=SHARED_INDEX_M, help="HNSW m (links per node), 2..100.")
        parser.add_argument(
            "--ef-construction",
            type=int,
            default=SHARED_INDEX_EF_CONSTRUCTION,
            help="HNSW ef_construction, >= 2*m, <= 1000.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the statements; run nothing.")
        parser.add_argument(
            "--tenant", help="Only this tenant's own index (slug): built if missing, dropped if obsolete, else rebuilt."
        )
        parser.add_argument(
            "--tenant-indexes-only",
            action="store_true",
            help="Leave the shared index alone: only build missing and drop obsolete tenant indexes.",
        )

    def handle(self, *args, rebuild, m, ef_construction, dry_run, tenant, tenant_indexes_only, **options):
        tenant = tenant_or_error(tenant)
        if tenant and rebuild:
            raise CommandError("--rebuild applies to the shared index; a tenant's index has fixed parameters.")
        try:
            indexes.check_build_parameters(m, ef_construction)
            shared = indexes.shared_rebuild_statements(m, ef_construction) if rebuild else []
            if not dry_run:
                indexes.ensure_outside_transaction()
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        if tenant is None and not tenant_indexes_only:
            self._run(shared or indexes.shared_reindex_statements(), dry_run)
            if not dry_run:
                self.stdout.write(self.style.SUCCESS(f"Index {SHARED_INDEX_NAME} rebuilt."))
        if dry_run:
            self._plan_tenant_indexes(tenant.pk if tenant else None)
        else:
            self._sync_tenant_indexes(tenant.pk if tenant else None)

    def _run(self, statements: list[str], dry_run: bool) -> None:
        if dry_run:
            for statement in statements:
                self.stdout.write(statement + ";")
            return
        indexes.run(statements, progress=self._say)

    def _say(self, line: str) -> None:
        self.stdout.write(f"  {line}")

    def _plan_tenant_indexes(self, tenant_id: int | None) -> None:
        todo, statements = tenant_indexes.planned_statements(tenant_id)
        self._run(statements, dry_run=True)
        self.stdout.write(f"-- tenant indexes: {len(todo.create)} to build, {len(todo.drop)} to drop, {todo.kept} kept")

    def _sync_tenant_indexes(self, tenant_id: int | None) -> None:
        say = self._say
        result = (
            tenant_indexes.sync(progress=say) if tenant_id is None else tenant_indexes.rebuild_tenant(tenant_id, say)
        )
        if result.skipped:
            raise CommandError("Another sync of the tenant indexes is running (beat or a command): try again later.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant indexes: {len(result.created)} built, {len(result.dropped)} dropped, {result.kept} kept."
            )
        )
