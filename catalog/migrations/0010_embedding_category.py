"""Each vector carries its product's category, so that a search's category
filter is a condition on the row, checked inside the HNSW index scan, instead
of a lookup of the product for every row the scan reads (bench/vector_plans.py
measured the filtered searches of a large tenant about twice as fast).

Database triggers keep the column, whatever writes the rows: a vector's
category is set from its product whenever it is written or its product
changes, and a product's new category is copied to its vectors.

The column is added empty (no rewrite). Rows already there are filled here
when there are at most FILL_HERE_AT_MOST of them; a larger table is left to
`manage.py fill_embedding_categories`, which fills them in batches, shows its
progress and carries on where it stopped. Updating a row writes it again into
each HNSW index that holds it, so that can take as long as indexing the
vectors did; searches of a tenant whose rows are not all filled filter through
the product meanwhile, with the same results. The indexes are built
CONCURRENTLY (this migration is not atomic): writes go on meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

FILL_HERE_AT_MOST = 100_000

CREATE_TRIGGERS = """
CREATE FUNCTION catalog_embedding_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE waits for a change of the product's category being made now,
    -- whose copy to the vectors would not see this row yet.
    NEW.category := COALESCE(
        (SELECT p.category FROM catalog_product p WHERE p.id = NEW.product_id FOR SHARE), ''
    );
    RETURN NEW;
END $$;

CREATE TRIGGER embedding_category BEFORE INSERT OR UPDATE OF product_id, category ON catalog_embedding
    FOR EACH ROW EXECUTE FUNCTION catalog_embedding_category();

CREATE FUNCTION catalog_product_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_embedding SET category = NEW.category
    WHERE product_id = NEW.id AND category IS DISTINCT FROM NEW.category;
    RETURN NULL;
END $$;

CREATE TRIGGER product_category AFTER UPDATE OF category ON catalog_product
    FOR EACH ROW WHEN (OLD.category IS DISTINCT FROM NEW.category) EXECUTE FUNCTION catalog_product_category();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS product_category ON catalog_product;
DROP FUNCTION IF EXISTS catalog_product_category();
DROP TRIGGER IF EXISTS embedding_category ON catalog_embedding;
DROP FUNCTION IF EXISTS catalog_embedding_category();
"""

# Setting '' makes the trigger set the product's category.
FILL_SMALL_TABLE = f"""
DO $$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM catalog_embedding LIMIT {FILL_HERE_AT_MOST + 1}) AS s)
            <= {FILL_HERE_AT_MOST} THEN
        UPDATE catalog_embedding SET category = '' WHERE category IS NULL;
    ELSE
        RAISE NOTICE 'catalog_embedding has over % rows: run manage.py fill_embedding_categories', {FILL_HERE_AT_MOST};
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0009_tenant_settings_from_thresholds")]

    operations = [
        migrations.AddField(
            model_name="embedding",
            name="category",
            field=models.CharField(blank=True, editable=False, max_length=100, null=True),
        ),
        migrations.RunSQL(CREATE_TRIGGERS, reverse_sql=DROP_TRIGGERS),
        AddIndexConcurrently(
            model_name="embedding",
            index=models.Index(
                condition=models.Q(category__isnull=True), fields=["tenant"], name="embedding_category_unfilled"
            ),
        ),
        migrations.RunSQL(FILL_SMALL_TABLE, reverse_sql=migrations.RunSQL.noop),
        AddIndexConcurrently(
            model_name="embedding",
            index=models.Index(fields=["tenant", "category"], name="embedding_tenant_category"),
        ),
    ]
