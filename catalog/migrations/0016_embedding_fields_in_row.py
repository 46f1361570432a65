"""The vector rows keep their `category` and `attributes` in the row
(STORAGE MAIN), where a search's filter reads them.

A vector row is over 2 kB (the vector itself is stored in the row, search
migration 0005), so PostgreSQL moved any other value longer than a TOAST
pointer out of it: checking a row's attributes (a filter inside an HNSW
scan, or on the rows a GIN index found) read two or three more pages for
each row (bench/README.md: the largest tenant's price range went from 9.4 to
5.1 ms at p95). Each large tenant's GIN index over its rows' attributes is
built by search/tenant_indexes.py, as its HNSW index is.

Rows stored before keep their values out of the row (same results, slower)
until they are written again: here when the table has at most
FILL_HERE_AT_MOST rows, else by `manage.py fill_embedding_categories`."""

from django.db import migrations

FILL_HERE_AT_MOST = 100_000
LOCK_TIMEOUT = "10s"

# Rows with a value out of the row (TOAST). Writing the category makes the
# trigger of migration 0015 set both again from the product, into the row.
OUT_OF_ROW = "pg_column_toast_chunk_id(attributes) IS NOT NULL OR pg_column_toast_chunk_id(category) IS NOT NULL"


def rewrite_small_table(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM catalog_embedding LIMIT %s) AS s", [FILL_HERE_AT_MOST + 1])
        if cursor.fetchone()[0] <= FILL_HERE_AT_MOST:
            cursor.execute(f"UPDATE catalog_embedding SET category = '' WHERE {OUT_OF_ROW}")  # noqa: S608 - a constant
        else:
            print(
                f"\n  catalog_embedding has over {FILL_HERE_AT_MOST:,} rows: run `manage.py fill_embedding_categories`"
                " (until then, filters read older rows' attributes out of the row: slower, same results)."
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0015_embedding_attributes")]

    operations = [
        migrations.RunSQL(f"SET lock_timeout = '{LOCK_TIMEOUT}'", migrations.RunSQL.noop),
        migrations.RunSQL(
            "ALTER TABLE catalog_embedding ALTER COLUMN attributes SET STORAGE MAIN,"
            " ALTER COLUMN category SET STORAGE MAIN",
            "ALTER TABLE catalog_embedding ALTER COLUMN attributes SET STORAGE EXTENDED,"
            " ALTER COLUMN category SET STORAGE EXTENDED",
        ),
        migrations.RunSQL("RESET lock_timeout", migrations.RunSQL.noop),
        migrations.RunPython(rewrite_small_table, migrations.RunPython.noop),
    ]
