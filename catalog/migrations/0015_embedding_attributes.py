"""Each vector carries its product's attributes too, as it carries its
category (migration 0010): a search's attribute range is then a condition
on the row, checked inside the HNSW scan, instead of a lookup of the product
for every row (bench/vector_scale.py: the largest tenant's price range took
53 ms at p95 through the product, 11 to 18 ms on the row). Attribute values
still go through the products' GIN index (bench/README.md: one over the
rows measured slower).

The triggers of migration 0010 are extended: a vector's attributes are set
from its product whenever it is written or its product changes, and a
product's new attributes are copied to its vectors (each copy writes the
vector again into its HNSW index: a price change costs a product's vectors'
index entries).

The column is added empty (no rewrite). Rows already there are filled here
when there are at most FILL_HERE_AT_MOST of them; a larger table is left to
`manage.py fill_embedding_categories`, which fills both columns in batches.
Until a tenant's rows are all filled, its filters go through the product,
with the same results. Indexes are built CONCURRENTLY (not atomic); each
step can run again."""

from django.db import migrations, models

FILL_HERE_AT_MOST = 100_000
LOCK_TIMEOUT = "10s"

CREATE_TRIGGERS = """
CREATE OR REPLACE FUNCTION catalog_embedding_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE waits for a change of the product being made now, whose
    -- copy to the vectors would not see this row yet. No product: NULLs.
    SELECT p.category, p.attributes INTO NEW.category, NEW.attributes
    FROM catalog_product p WHERE p.id = NEW.product_id FOR SHARE;
    NEW.category := COALESCE(NEW.category, '');
    NEW.attributes := COALESCE(NEW.attributes, '{}'::jsonb);
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER embedding_category
    BEFORE INSERT OR UPDATE OF product_id, category, attributes ON catalog_embedding
    FOR EACH ROW EXECUTE FUNCTION catalog_embedding_category();

CREATE OR REPLACE FUNCTION catalog_product_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_embedding SET category = NEW.category, attributes = NEW.attributes
    WHERE product_id = NEW.id
      AND (category IS DISTINCT FROM NEW.category OR attributes IS DISTINCT FROM NEW.attributes);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER product_category AFTER UPDATE OF category, attributes ON catalog_product
    FOR EACH ROW WHEN (OLD.category IS DISTINCT FROM NEW.category OR OLD.attributes IS DISTINCT FROM NEW.attributes)
    EXECUTE FUNCTION catalog_product_category();
"""

# Migration 0010's, as they were.
RESTORE_TRIGGERS = """
CREATE OR REPLACE FUNCTION catalog_embedding_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.category := COALESCE(
        (SELECT p.category FROM catalog_product p WHERE p.id = NEW.product_id FOR SHARE), ''
    );
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER embedding_category BEFORE INSERT OR UPDATE OF product_id, category ON catalog_embedding
    FOR EACH ROW EXECUTE FUNCTION catalog_embedding_category();
CREATE OR REPLACE FUNCTION catalog_product_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_embedding SET category = NEW.category
    WHERE product_id = NEW.id AND category IS DISTINCT FROM NEW.category;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER product_category AFTER UPDATE OF category ON catalog_product
    FOR EACH ROW WHEN (OLD.category IS DISTINCT FROM NEW.category) EXECUTE FUNCTION catalog_product_category();
"""

UNFILLED = "embedding_fields_unfilled"


def concurrently(name: str, definition: str) -> list[migrations.RunSQL]:
    """Index `name` built CONCURRENTLY, first dropping one an interrupted build left invalid."""
    return [
        migrations.RunSQL(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", migrations.RunSQL.noop),
        migrations.RunSQL(
            f"CREATE INDEX CONCURRENTLY {name} ON catalog_embedding {definition}",
            f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        ),
    ]


def fill_small_table(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM catalog_embedding LIMIT %s) AS s", [FILL_HERE_AT_MOST + 1])
        if cursor.fetchone()[0] <= FILL_HERE_AT_MOST:
            # Writing the category makes the trigger set both from the product.
            cursor.execute(
                "UPDATE catalog_embedding SET category = '' WHERE category IS NULL OR attributes IS NULL"
            )
        else:
            print(
                f"\n  catalog_embedding has over {FILL_HERE_AT_MOST:,} rows: run `manage.py fill_embedding_categories`"
                " (searches filter through the product until a tenant's rows are filled)."
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0014_product_search_document")]

    operations = [
        migrations.RunSQL(f"SET lock_timeout = '{LOCK_TIMEOUT}'", migrations.RunSQL.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE catalog_embedding ADD COLUMN IF NOT EXISTS attributes jsonb NULL",
                    "ALTER TABLE catalog_embedding DROP COLUMN IF EXISTS attributes",
                )
            ],
            state_operations=[
                migrations.AddField(
                    model_name="embedding",
                    name="attributes",
                    field=models.JSONField(blank=True, editable=False, null=True),
                )
            ],
        ),
        migrations.RunSQL(CREATE_TRIGGERS, reverse_sql=RESTORE_TRIGGERS),
        migrations.RunSQL("RESET lock_timeout", migrations.RunSQL.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=concurrently(UNFILLED, "(tenant_id) WHERE category IS NULL OR attributes IS NULL"),
            state_operations=[
                migrations.AddIndex(
                    model_name="embedding",
                    index=models.Index(
                        fields=["tenant"],
                        name=UNFILLED,
                        condition=models.Q(category__isnull=True) | models.Q(attributes__isnull=True),
                    ),
                )
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX CONCURRENTLY IF EXISTS embedding_category_unfilled",
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS embedding_category_unfilled ON catalog_embedding"
                    " (tenant_id) WHERE category IS NULL",
                )
            ],
            state_operations=[migrations.RemoveIndex(model_name="embedding", name="embedding_category_unfilled")],
        ),
        migrations.RunPython(fill_small_table, migrations.RunPython.noop),
    ]
