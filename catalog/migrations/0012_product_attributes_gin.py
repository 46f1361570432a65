"""A GIN index over the products' attributes, for a search's attribute filter
(search/filters.py: `attributes @> '{"color": "red"}'`), built CONCURRENTLY
(this migration is not atomic): writes go on meanwhile."""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("catalog", "0011_drop_shared_vector_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="product",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["attributes"], name="product_attributes_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
    ]
