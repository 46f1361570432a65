"""Every tenant's thresholds (search.Thresholds) become its settings, with
their change history; a tenant that never had a row gets the defaults, as
every tenant created from now on does (catalog.tenants.create_tenant)."""

from django.db import migrations

COPY_SETTINGS = """
    INSERT INTO catalog_tenantsettings (tenant_id, min_similarity, near_duplicate_similarity,
        auto_assign_confidence, stuck_after_minutes, hnsw_ef_search, updated_at, updated_by_id)
    SELECT tenant_id, min_similarity, near_duplicate_similarity, auto_assign_confidence,
        stuck_after_minutes, hnsw_ef_search, updated_at, updated_by_id
    FROM search_thresholds
"""
COPY_CHANGES = """
    INSERT INTO catalog_tenantsettingschange (tenant_settings_id, field, old_value, new_value,
        changed_by_id, changed_at)
    SELECT s.id, c.field, c.old_value, c.new_value, c.changed_by_id, c.changed_at
    FROM search_thresholdchange c
    JOIN search_thresholds t ON t.id = c.thresholds_id
    JOIN catalog_tenantsettings s ON s.tenant_id = t.tenant_id
    ORDER BY c.id
"""
COPY_BACK_SETTINGS = """
    INSERT INTO search_thresholds (tenant_id, min_similarity, near_duplicate_similarity,
        auto_assign_confidence, stuck_after_minutes, hnsw_ef_search, updated_at, updated_by_id)
    SELECT tenant_id, min_similarity, near_duplicate_similarity, auto_assign_confidence,
        stuck_after_minutes, hnsw_ef_search, updated_at, updated_by_id
    FROM catalog_tenantsettings
"""
COPY_BACK_CHANGES = """
    INSERT INTO search_thresholdchange (thresholds_id, field, old_value, new_value, changed_by_id, changed_at)
    SELECT t.id, c.field, c.old_value, c.new_value, c.changed_by_id, c.changed_at
    FROM catalog_tenantsettingschange c
    JOIN catalog_tenantsettings s ON s.id = c.tenant_settings_id
    JOIN search_thresholds t ON t.tenant_id = s.tenant_id
    ORDER BY c.id
"""


def copy_thresholds(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(COPY_SETTINGS)
        cursor.execute(COPY_CHANGES)
    tenant_model = apps.get_model("catalog", "Tenant")
    settings_model = apps.get_model("catalog", "TenantSettings")
    settings_model.objects.bulk_create(
        settings_model(tenant=tenant) for tenant in tenant_model.objects.filter(settings__isnull=True)
    )


def copy_back(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DELETE FROM search_thresholdchange")
        cursor.execute("DELETE FROM search_thresholds")
        cursor.execute(COPY_BACK_SETTINGS)
        cursor.execute(COPY_BACK_CHANGES)
        cursor.execute("DELETE FROM catalog_tenantsettingschange")
        cursor.execute("DELETE FROM catalog_tenantsettings")


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0008_tenant_settings"),
        ("search", "0006_embedding_to_catalog"),
    ]

    operations = [migrations.RunPython(copy_thresholds, copy_back)]
