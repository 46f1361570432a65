# Thumbnails, perceptual hashes and the three tiers of duplicates. The links
# made before were all by CLIP similarity: they become `similar`. The hash
# indexes are built CONCURRENTLY, so a large media table keeps taking writes.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('catalog', '0017_webhooks'),
    ]

    operations = [
        migrations.AddField(
            model_name='media',
            name='duplicate_kind',
            field=models.CharField(blank=True, choices=[('exact', 'Exact'), ('near_identical', 'Near Identical'), ('similar', 'Similar')], db_default='', default='', max_length=14),
        ),
        migrations.AddField(
            model_name='media',
            name='phash',
            field=models.BigIntegerField(blank=True, help_text="The image's perceptual hash (64 bits).", null=True),
        ),
        migrations.AddField(
            model_name='media',
            name='thumbnail_key',
            field=models.CharField(blank=True, db_default='', default='', max_length=600),
        ),
        migrations.AddField(
            model_name='videoframe',
            name='phash',
            field=models.BigIntegerField(blank=True, help_text="The frame's perceptual hash (64 bits).", null=True),
        ),
        migrations.AlterField(
            model_name='media',
            name='duplicate_similarity',
            field=models.FloatField(blank=True, help_text='1 for exact copies; for near-identical ones the share of perceptual hash bits alike; for similar ones the CLIP similarity.', null=True),
        ),
        migrations.RunSQL(
            "UPDATE catalog_media SET duplicate_kind = 'similar' WHERE duplicate_of_id IS NOT NULL",
            migrations.RunSQL.noop,
        ),
        AddIndexConcurrently(
            model_name='media',
            index=models.Index(condition=models.Q(('phash__isnull', False)), fields=['tenant', 'phash'], include=('id', 'status'), name='media_tenant_phash'),
        ),
        AddIndexConcurrently(
            model_name='media',
            index=models.Index(condition=models.Q(('duplicate_of__isnull', False)), fields=['-id'], name='media_duplicates'),
        ),
        migrations.AddConstraint(
            model_name='media',
            constraint=models.CheckConstraint(condition=models.Q(('duplicate_kind__in', ['', 'exact', 'near_identical', 'similar'])), name='media_duplicate_kind_valid'),
        ),
    ]
