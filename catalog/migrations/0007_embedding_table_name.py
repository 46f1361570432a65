"""search_embedding becomes catalog_embedding, the table of its model's app.
A rename: the rows, the HNSW indexes (the shared one and every tenant's own)
and the constraints stay; it takes a brief exclusive lock, no rewrite."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_embedding_from_search"),
        ("search", "0006_embedding_to_catalog"),
    ]

    operations = [
        migrations.AlterModelTable(name="embedding", table="catalog_embedding"),
    ]
