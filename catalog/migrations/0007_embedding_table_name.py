"""search_embedding becomes catalog_embedding, the table of its model's app.
A rename: the rows, the HNSW indexes (the shared one and every tenant's own)
and the constraints stay; it takes a brief exclusive lock, no rewrite.

It waits at most LOCK_TIMEOUT for that lock (a tenant index being built holds
the table for minutes), then fails without changing anything: stop beat and
any `manage.py reindex`, run `migrate` again, then restart web, workers and
beat together (processes of the previous release query the old name)."""

from django.db import migrations

LOCK_TIMEOUT = "10s"


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_embedding_from_search"),
        ("search", "0006_embedding_to_catalog"),
    ]

    operations = [
        # SET LOCAL: for this migration's transaction only.
        migrations.RunSQL(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'", reverse_sql=migrations.RunSQL.noop),
        migrations.AlterModelTable(name="embedding", table="catalog_embedding"),
    ]
