# Thumbnails, perceptual hashes and the three tiers of duplicates. The links
# made before were all by CLIP similarity: they become `similar`. New columns
# only (no rewrite of the table); their indexes come in 0019.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0017_webhooks'),
    ]

    operations = [
        # Each change takes the table's lock for a moment; waiting for it behind
        # a long transaction would stall every write, so give up instead (and
        # run the migration again).
        migrations.RunSQL("SET lock_timeout = '10s'", migrations.RunSQL.noop),
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
        # Added NOT VALID (no scan under the table's lock); 0019 validates it.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE catalog_media ADD CONSTRAINT media_duplicate_kind_valid CHECK "
                    "(duplicate_kind IN ('', 'exact', 'near_identical', 'similar')) NOT VALID",
                    "ALTER TABLE catalog_media DROP CONSTRAINT media_duplicate_kind_valid",
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name='media',
                    constraint=models.CheckConstraint(condition=models.Q(('duplicate_kind__in', ['', 'exact', 'near_identical', 'similar'])), name='media_duplicate_kind_valid'),
                ),
            ],
        ),
        migrations.RunSQL("RESET lock_timeout", migrations.RunSQL.noop),
    ]
