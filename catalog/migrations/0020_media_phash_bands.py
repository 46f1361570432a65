"""The perceptual-hash lookup of the duplicate check (media_pipeline/duplicates.py)
without reading every hash of a large tenant: the 64-bit hash cut into four
16-bit bands, each tagged with its tenant and its place, and a GIN index over
them. Two hashes that differ in at most 3 bits share a band (four bands, three
bits: one band is untouched), most that differ in a few more do too, and a
lookup reads only the rows that share one: a few in a tenant of 100,000
(bench/duplicates.py).

`stockmind_phash_bands(tenant, hash)` gives the four tagged bands: tenant
id << 18 | band number << 16 | the band's bits. The index is built
CONCURRENTLY (this migration is not atomic); Django does not know it, the
lookup's raw SQL reads it."""

from django.db import migrations

BANDS = """
CREATE OR REPLACE FUNCTION stockmind_phash_bands(tenant bigint, hash bigint) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY[
    (tenant << 18) | (0::bigint << 16) | ((hash >> 48) & 65535),
    (tenant << 18) | (1::bigint << 16) | ((hash >> 32) & 65535),
    (tenant << 18) | (2::bigint << 16) | ((hash >> 16) & 65535),
    (tenant << 18) | (3::bigint << 16) | (hash & 65535)
];
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("catalog", "0019_media_duplicate_indexes"),
    ]

    operations = [
        migrations.RunSQL(BANDS, "DROP FUNCTION IF EXISTS stockmind_phash_bands(bigint, bigint);"),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS media_phash_bands ON catalog_media"
            " USING gin (stockmind_phash_bands(tenant_id, phash)) WHERE phash IS NOT NULL;",
            "DROP INDEX CONCURRENTLY IF EXISTS media_phash_bands;",
        ),
    ]
