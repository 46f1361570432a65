"""Store vectors in their row instead of out of line in TOAST.

A vector(512) is 2,056 bytes: pgvector's type defaults to EXTERNAL storage, so
every vector lands in the TOAST table and an exact scan pays two TOAST lookups
per row (about 4 times slower than reading it in line; bench/vector_search.py).
MAIN keeps it in the row (three to four rows per page) and moves it out only if
a row could not fit in a page, which a larger model's vectors might.

Only rows written from now on are stored this way: an existing deployment
rewrites its old rows with `VACUUM FULL search_embedding` (locks the table
while it runs) or pg_repack, or leaves them to be replaced by a `reembed`.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0004_recognizer"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE search_embedding ALTER COLUMN vector SET STORAGE MAIN",
            reverse_sql="ALTER TABLE search_embedding ALTER COLUMN vector SET STORAGE EXTERNAL",
        ),
    ]
