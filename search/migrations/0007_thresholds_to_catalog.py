"""Thresholds are now catalog.TenantSettings (copied by catalog migration
0009, values and history): the old tables go."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0006_embedding_to_catalog"),
        ("catalog", "0009_tenant_settings_from_thresholds"),
    ]

    operations = [
        migrations.DeleteModel(name="ThresholdChange"),
        migrations.DeleteModel(name="Thresholds"),
    ]
