"""Drop the HNSW index over every tenant's vectors.

Every vector written was inserted into two HNSW graphs, this one and its
tenant's own, which held inserts at 0.52 to 0.63 of a table with one index
(bench/vector_plans.py), while searches used this one only for a large tenant
in the minutes before its own index was built. Such a tenant is now scanned
exactly meanwhile (search/query.py), and its search asks for the build.

Dropped CONCURRENTLY (this migration is not atomic): searches and writes go on.
Tenants above search.query.EXACT_SCAN_MAX_VECTORS without their own index are
scanned exactly until the next sync builds it; `manage.py reindex` before this
migration builds them first. Migrating back builds the index again."""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("catalog", "0010_embedding_category"),
    ]

    operations = [
        RemoveIndexConcurrently(model_name="embedding", name="embedding_vector_hnsw"),
    ]
