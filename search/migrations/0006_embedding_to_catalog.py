"""The Embedding model now lives in catalog (catalog migration 0006): search
forgets it without touching the table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0005_embedding_vector_in_row"),
        ("catalog", "0006_embedding_from_search"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Embedding")],
            database_operations=[],
        ),
    ]
