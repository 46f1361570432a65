from django.core.management.base import BaseCommand, CommandError
from django.db import connection

INDEX = "embedding_vector_hnsw"


class Command(BaseCommand):
    help = (
        "Rebuild the HNSW vector index without blocking searches (REINDEX INDEX CONCURRENTLY), or recreate "
        "it with other parameters (--rebuild --m --ef-construction)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Drop and recreate with the given parameters.")
        parser.add_argument("--m", type=int, default=16, help="HNSW m (links per node), 2..100.")
        parser.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction, >= 2*m, <= 1000.")
        parser.add_argument("--dry-run", action="store_true", help="Print the statements; run nothing.")
        parser.add_argument("--tenant", help="Not applicable: one index serves every tenant (refused).")

    def handle(self, *args, rebuild, m, ef_construction, dry_run, tenant, **options):
        if tenant:
            raise CommandError("The vector index is shared by every tenant; it cannot be rebuilt for one.")
        if not 2 <= m <= 100 or not 2 * m <= ef_construction <= 1000:
            raise CommandError("Use 2 <= m <= 100 and 2*m <= ef_construction <= 1000 (pgvector's limits).")
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
        connection.ensure_connection()
        if not connection.get_autocommit():
            raise CommandError("Run outside a transaction: CONCURRENTLY cannot run inside one.")
        with connection.cursor() as cursor:
            for number, statement in enumerate(statements, 1):
                self.stdout.write(f"  [{number}/{len(statements)}] {statement.split(' ON ')[0]}")
                cursor.execute(statement)
        self.stdout.write(self.style.SUCCESS(f"Index {INDEX} rebuilt."))
