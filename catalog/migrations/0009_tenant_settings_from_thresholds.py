"""Every tenant's thresholds (search.Thresholds) become its settings, with
their change history; a tenant that never had a row gets the defaults, as
every tenant created from now on does (catalog.tenants.create_tenant). Staff
given a permission on thresholds get the same on tenant settings."""

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


# (old model, new model) of search and catalog whose permissions carry over.
RENAMED = [("thresholds", "tenantsettings"), ("thresholdchange", "tenantsettingschange")]
ACTIONS = ("add", "change", "delete", "view")


def copy_permissions(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    permission = apps.get_model("auth", "Permission")
    for old, new in RENAMED:
        old_type = content_type.objects.filter(app_label="search", model=old).first()
        if old_type is None:  # a database that never had them: nothing granted
            continue
        new_type, _ = content_type.objects.get_or_create(app_label="catalog", model=new)
        verbose = apps.get_model("catalog", new)._meta.verbose_name
        for action in ACTIONS:
            granted = permission.objects.filter(content_type=old_type, codename=f"{action}_{old}").first()
            if granted is None:
                continue
            carried, _ = permission.objects.get_or_create(
                content_type=new_type, codename=f"{action}_{new}", defaults={"name": f"Can {action} {verbose}"}
            )
            for group in granted.group_set.all():
                group.permissions.add(carried)
            for user in granted.user_set.all():
                user.user_permissions.add(carried)


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
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(copy_thresholds, copy_back),
        migrations.RunPython(copy_permissions, migrations.RunPython.noop),
    ]
