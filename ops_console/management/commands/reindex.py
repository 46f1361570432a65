from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from ops_console.maintenance import tenant_or_error
from search import tenant_indexes
from search.models import HNSW_EF_CONSTRUCTION, HNSW_M

INDEX = "embedding_vector_hnsw"


class Command(BaseCommand):
    help = (
        "Rebuild the shared HNSW vector index without blocking searches (REINDEX INDEX CONCURRENTLY), or recreate "
        "it with other parameters (--rebuild --m --ef-construction); then build the missing per-tenant indexes "
        "and drop the obsolete ones (what beat does every SEARCH_INDEX_SYNC_SECONDS). With --tenant, that "
        "tenant's own index only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Drop and recreate with the given parameters.")
        parser.add_argument("--m", type=int, default=HNSW_M, help="HNSW m (links per node), 2..100.")
        parser.add_argument(
            "--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION, help="HNSW ef_construction, >= 2*m, <= 1000."
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
        if not 2 <= m <= 100 or not 2 * m <= ef_construction <= 1000:
            raise CommandError("Use 2 <= m <= 100 and 2*m <= ef_construction <= 1000 (pgvector's limits).")
        connection.ensure_connection()
        if not dry_run and not connection.get_autocommit():
            raise CommandError("Run outside a transaction: CONCURRENTLY cannot run inside one.")

        if tenant is None and not tenant_indexes_only:
            self._shared_index(rebuild, m, ef_construction, dry_run)
        self._tenant_indexes(tenant, dry_run)

    def _shared_index(self, rebuild: bool, m: int, ef_construction: int, dry_run: bool) -> None:
        if rebuild:
            # The new index is built beside the old one, then swapped in: searches
            # keep an index all along.
            statements = [
                f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}_new",
                f"CREATE INDEX CONCURRENTLY {INDEX}_new ON search_embedding USING hnsw (vector vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction})",
                f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
                f"ALTER INDEX {INDEX}_new RENAME TO {INDEX}",
            ]
        else:
            statements = [f"REINDEX INDEX CONCURRENTLY {INDEX}"]
        if dry_run:
            for statement in statements:
                self.stdout.write(statement + ";")
            return
        with connection.cursor() as cursor:
            for number, statement in enumerate(statements, 1):
                self.stdout.write(f"  [{number}/{len(statements)}] {statement.split(' ON ')[0]}")
                cursor.execute(statement)
        self.stdout.write(self.style.SUCCESS(f"Index {INDEX} rebuilt."))

    def _tenant_indexes(self, tenant, dry_run: bool) -> None:
        tenant_id = tenant.pk if tenant else None
        if dry_run:
            todo = tenant_indexes.plan(tenant_id=tenant_id)
            statements = tenant_indexes.statements(todo)
            if tenant is not None:
                statements += self._reindex_kept(tenant_id, todo)
            for statement in statements:
                self.stdout.write(statement + ";")
            self.stdout.write(
                f"-- tenant indexes: {len(todo.create)} to build, {len(todo.drop)} to drop, {todo.kept} kept"
            )
            return
        result = tenant_indexes.sync(tenant_id=tenant_id, progress=lambda line: self.stdout.write(f"  {line}"))
        if result.skipped:
            raise CommandError("Another sync of the tenant indexes is running (beat or a command): try again later.")
        if tenant is not None:
            self._rebuild_tenant(tenant_id, set(result.created))
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant indexes: {len(result.created)} built, {len(result.dropped)} dropped, {result.kept} kept."
            )
        )

    def _reindex_kept(self, tenant_id: int, todo: tenant_indexes.SyncPlan) -> list[str]:
        fresh = {index.name for index in todo.create} | set(todo.drop)
        return [s for s in tenant_indexes.reindex_statements(tenant_id) if s.split()[-1] not in fresh]

    def _rebuild_tenant(self, tenant_id: int, just_built: set[str]) -> None:
        statements = [s for s in tenant_indexes.reindex_statements(tenant_id) if s.split()[-1] not in just_built]
        with connection.cursor() as cursor:
            for number, statement in enumerate(statements, 1):
                self.stdout.write(f"  [{number}/{len(statements)}] {statement}")
                cursor.execute(statement)
