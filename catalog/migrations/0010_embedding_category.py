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
CONCURRENTLY (this migration is not atomic): writes go on meanwhile.

Each step can run again, so that `migrate` after an interruption carries on.
Adding the column and the trigger takes a brief exclusive lock, which waits
at most LOCK_TIMEOUT (a tenant index being built holds the table for
minutes): stop beat and any `manage.py reindex` first."""

from django.db import migrations, models

FILL_HERE_AT_MOST = 100_000

CREATE_TRIGGERS = """
CREATE OR REPLACE FUNCTION catalog_embedding_category() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- FOR SHARE waits for a change of the product's category being made now,
    -- whose copy to the vectors would not see this row yet.
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

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS product_category ON catalog_product;
DROP FUNCTION IF EXISTS catalog_product_category();
DROP TRIGGER IF EXISTS embedding_category ON catalog_embedding;
DROP FUNCTION IF EXISTS catalog_embedding_category();
"""

LOCK_TIMEOUT = "10s"
COLUMN = models.CharField(blank=True, editable=False, max_length=100, null=True)


def index(state: models.Index, columns: str, where: str = "") -> migrations.SeparateDatabaseAndState:
    """`state` built CONCURRENTLY (over `columns`, `where`), first dropping one
    an interrupted build left invalid."""
    name = state.name
    return migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.RunSQL(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", migrations.RunSQL.noop),
            migrations.RunSQL(
                f"CREATE INDEX CONCURRENTLY {name} ON catalog_embedding ({columns}){where}",
                f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
            ),
        ],
        state_operations=[migrations.AddIndex(model_name="embedding", index=state)],
    )


def fill_small_table(apps, schema_editor) -> None:
    """The rows' categories, here when the table is small; else say what to run."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM catalog_embedding LIMIT %s) AS s", [FILL_HERE_AT_MOST + 1])
        if cursor.fetchone()[0] <= FILL_HERE_AT_MOST:
            # '' makes the trigger set the product's category.
            cursor.execute("UPDATE catalog_embedding SET category = '' WHERE category IS NULL")
        else:
            print(
                f"\n  catalog_embedding has over {FILL_HERE_AT_MOST:,} rows: run `manage.py fill_embedding_categories`"
                " (searches filter through the product until a tenant's rows are filled)."
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("catalog", "0009_tenant_settings_from_thresholds")]

    operations = [
        migrations.RunSQL(f"SET lock_timeout = '{LOCK_TIMEOUT}'", migrations.RunSQL.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE catalog_embedding ADD COLUMN IF NOT EXISTS category varchar(100) NULL",
                    "ALTER TABLE catalog_embedding DROP COLUMN IF EXISTS category",
                )
            ],
            state_operations=[migrations.AddField(model_name="embedding", name="category", field=COLUMN)],
        ),
        migrations.RunSQL(CREATE_TRIGGERS, reverse_sql=DROP_TRIGGERS),
        migrations.RunSQL("RESET lock_timeout", migrations.RunSQL.noop),
        index(
            models.Index(
                fields=["tenant"], name="embedding_category_unfilled", condition=models.Q(category__isnull=True)
            ),
            "tenant_id",
            " WHERE category IS NULL",
        ),
        migrations.RunPython(fill_small_table, migrations.RunPython.noop),
        index(models.Index(fields=["tenant", "category"], name="embedding_tenant_category"), "tenant_id, category"),
    ]
