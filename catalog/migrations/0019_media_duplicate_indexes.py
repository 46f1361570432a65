# The indexes of 0018's columns, built CONCURRENTLY so a large media table
# keeps taking writes, and its check constraint validated (a scan that does
# not block writes). Not atomic: each statement commits on its own, and one
# that failed is done again by running the migration again.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('catalog', '0018_media_thumbnails_and_duplicate_kinds'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='media',
            index=models.Index(condition=models.Q(('phash__isnull', False)), fields=['tenant', 'phash'], include=('id', 'status'), name='media_tenant_phash'),
        ),
        AddIndexConcurrently(
            model_name='media',
            index=models.Index(condition=models.Q(('duplicate_of__isnull', False)), fields=['-id'], name='media_duplicates'),
        ),
        migrations.RunSQL(
            "ALTER TABLE catalog_media VALIDATE CONSTRAINT media_duplicate_kind_valid", migrations.RunSQL.noop
        ),
    ]
