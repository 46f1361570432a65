# The dashboard's index; built CONCURRENTLY so a large media table keeps
# taking writes while it is created.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('catalog', '0004_tenant_slug_pattern'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='media',
            index=models.Index(fields=['processed_at'], include=('status', 'tenant', 'processing_started_at'), name='media_processed_at'),
        ),
    ]
