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

# Rows with a value out of the row (TOAST) that fits in it beside the 2 kB
# vector: writing the category makes the trigger of migration 0015 set both
# again from the product, into the row. A larger value stays out of the row
# (PostgreSQL's last resort for a row that would not fit its page).
FITS_IN_ROW_BYTES = 4096
OUT_OF_ROW = " OR ".join(
    f"(pg_column_toast_chunk_id({column}) IS NOT NULL AND pg_column_size({column}) <= {FITS_IN_ROW_BYTES})"
    for column in ("attributes", "category")
)
BATCH = 1000


def rewrite_small_table(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM catalog_embedding LIMIT %s) AS s", [FILL_HERE_AT_MOST + 1])
        if cursor.fetchone()[0] > FILL_HERE_AT_MOST:
            print(
                f"\n  catalog_embedding has over {FILL_HERE_AT_MOST:,} rows: run `manage.py fill_embedding_categories`"
                " (until then, filters read older rows' attributes out of the row: slower, same results)."
            )
            return
        last = 0
        while True:  # in batches, each its own transaction (this migration is not atomic)
            cursor.execute(
                "UPDATE catalog_embedding SET category = '' WHERE id IN (SELECT id FROM catalog_embedding"  # noqa: S608 - constants
                f" WHERE id > %s AND ({OUT_OF_ROW}) ORDER BY id LIMIT {BATCH}) RETURNING id",
                [last],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return
            last = max(ids)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0015_embedding_attributes")]

    operations = [
        migrations.RunSQL(f"SET lock_timeout = '{LOCK_TIMEOUT}'", "RESET lock_timeout"),
        migrations.RunSQL(
            "ALTER TABLE catalog_embedding ALTER COLUMN attributes SET STORAGE MAIN,"
            " ALTER COLUMN category SET STORAGE MAIN",
            "ALTER TABLE catalog_embedding ALTER COLUMN attributes SET STORAGE EXTENDED,"
            " ALTER COLUMN category SET STORAGE EXTENDED",
        ),
        migrations.RunSQL("RESET lock_timeout", f"SET lock_timeout = '{LOCK_TIMEOUT}'"),
        migrations.RunPython(rewrite_small_table, migrations.RunPython.noop),
    ]
