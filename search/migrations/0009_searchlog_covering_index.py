# The search analytics: the best score a first page that kept nothing left
# out (a new, empty column), and the log's (tenant, created_at) index, now
# covering the columns they read. Built CONCURRENTLY before the old one is
# dropped, so a large log keeps taking searches meanwhile.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('search', '0008_search_log'),
    ]

    operations = [
        migrations.AddField(
            model_name='searchlog',
            name='best_below_minimum',
            field=models.FloatField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name='searchlog',
            index=models.Index(
                fields=['tenant', 'created_at'],
                include=('kind', 'offset', 'result_count', 'took_ms', 'best_score', 'best_below_minimum'),
                name='searchlog_tenant_covering',
            ),
        ),
        RemoveIndexConcurrently(
            model_name='searchlog',
            name='searchlog_tenant_created',
        ),
    ]
