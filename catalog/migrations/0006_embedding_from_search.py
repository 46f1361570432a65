"""The Embedding model moves from the search app to catalog, below both the
pipeline that writes vectors and the search that reads them (DESIGN.md
"Which way imports run"). Only Django's record of the model moves here: the
table, its rows and its indexes stay as they are; 0007 renames the table.
Its content type moves too, so that staff permissions and admin history
follow it."""

import django.db.models.deletion
import pgvector.django.indexes
import pgvector.django.vector
from django.db import migrations, models


def move_content_type(apps, schema_editor, old="search", new="catalog"):
    content_type = apps.get_model("contenttypes", "ContentType")
    if not content_type.objects.filter(app_label=new, model="embedding").exists():
        content_type.objects.filter(app_label=old, model="embedding").update(app_label=new)


def move_content_type_back(apps, schema_editor):
    move_content_type(apps, schema_editor, old="catalog", new="search")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0005_media_processed_at_index"),
        ("search", "0005_embedding_vector_in_row"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Embedding",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        ("model_name", models.CharField(max_length=200)),
                        ("vector", pgvector.django.vector.VectorField(dimensions=512)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "frame",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="embeddings",
                                to="catalog.videoframe",
                            ),
                        ),
                        (
                            "media",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="embeddings",
                                to="catalog.media",
                            ),
                        ),
                        (
                            "product",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="catalog.product",
                            ),
                        ),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="catalog.tenant"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "search_embedding",
                        "indexes": [
                            pgvector.django.indexes.HnswIndex(
                                ef_construction=64,
                                fields=["vector"],
                                m=16,
                                name="embedding_vector_hnsw",
                                opclasses=["vector_cosine_ops"],
                            ),
                            models.Index(fields=["tenant", "product"], name="embedding_tenant_product"),
                            models.Index(fields=["created_at"], name="embedding_created_at"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("media", "frame", "model_name"),
                                name="embedding_unique_per_source",
                                nulls_distinct=False,
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
