"""Upgrading a deployment of the previous release: the vectors' move to
catalog (table renamed, rows kept, the HNSW index over every tenant's rows
dropped, its content type and the staff permissions on it moved) and each tenant's thresholds becoming its
settings (values and change history kept, the defaults for a tenant that had
none, the staff permissions carried over)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The previous release: Embedding and Thresholds in search (Django's own apps as now).
PREVIOUS = [
    ("catalog", "0005_media_processed_at_index"),
    ("search", "0005_embedding_vector_in_row"),
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0012_alter_user_first_name_max_length"),
]
CHANGED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def old_release_permissions(old, models: list[str]) -> dict[str, object]:
    """The content types and permissions the previous release's database
    held for `models` of search (this test database was made by the current
    release: its catalog ones go)."""
    content_type, permission = old.get_model("contenttypes", "ContentType"), old.get_model("auth", "Permission")
    content_type.objects.filter(app_label="catalog", model__in=["embedding", "tenantsettings"]).delete()
    granted = {}
    for model in models:
        kind, _ = content_type.objects.get_or_create(app_label="search", model=model)
        for action in ("view", "change"):
            granted[f"{action}_{model}"] = permission.objects.get_or_create(
                content_type=kind, codename=f"{action}_{model}", defaults={"name": f"Can {action} {model}"}
            )[0]
    return granted


@pytest.mark.django_db(transaction=True)
def test_an_upgrade_keeps_vectors_settings_history_and_permissions():
    old = migrate(PREVIOUS)
    tenant_model = old.get_model("catalog", "Tenant")
    tuned = tenant_model.objects.create(slug="tuned", name="Tuned")
    untouched = tenant_model.objects.create(slug="untouched", name="Untouched")
    media = old.get_model("catalog", "Media").objects.create(
        tenant=tuned, kind="image", storage_key="k.jpg", content_type="image/jpeg", size=1, status="ready"
    )
    old.get_model("search", "Embedding").objects.create(tenant=tuned, media=media, model_name="m", vector=[0.5] * 512)
    thresholds = old.get_model("search", "Thresholds").objects.create(
        tenant=tuned, min_similarity=0.31, near_duplicate_similarity=0.97, stuck_after_minutes=12, hnsw_ef_search=80
    )
    change = old.get_model("search", "ThresholdChange").objects.create(
        thresholds=thresholds, field="min_similarity", old_value="0.2", new_value="0.31"
    )
    old.get_model("search", "ThresholdChange").objects.filter(pk=change.pk).update(changed_at=CHANGED_AT)
    granted = old_release_permissions(old, ["embedding", "thresholds"])
    operators = old.get_model("auth", "Group").objects.create(name="operators")
    operators.permissions.add(granted["change_thresholds"], granted["view_embedding"])

    new = migrate(latest())

    settings_model = new.get_model("catalog", "TenantSettings")
    kept = settings_model.objects.get(tenant_id=tuned.pk)
    values = (kept.min_similarity, kept.near_duplicate_similarity, kept.stuck_after_minutes, kept.hnsw_ef_search)
    assert values == (0.31, 0.97, 12, 80)
    defaults = settings_model.objects.get(tenant_id=untouched.pk)
    assert (defaults.min_similarity, defaults.stuck_after_minutes) == (0.2, 30)
    [history] = new.get_model("catalog", "TenantSettingsChange").objects.filter(tenant_settings=kept)
    assert (history.field, history.old_value, history.new_value, history.changed_at) == (
        "min_similarity",
        "0.2",
        "0.31",
        CHANGED_AT,
    )
    [vector] = new.get_model("catalog", "Embedding").objects.filter(media_id=media.pk)
    assert list(vector.vector) == [0.5] * 512
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('search_thresholds'), to_regclass('search_embedding')")
        assert cursor.fetchone() == (None, None)
        cursor.execute("SELECT to_regclass('catalog_embedding'), to_regclass('embedding_vector_hnsw')")
        assert cursor.fetchone() == ("catalog_embedding", None)  # catalog 0011: tenants' own indexes only
    group = new.get_model("auth", "Group").objects.get(name="operators")
    assert set(group.permissions.values_list("content_type__app_label", "codename")) == {
        ("catalog", "view_embedding"),  # its content type moved, and the permission with it
        ("catalog", "change_tenantsettings"),  # carried over from thresholds
        ("search", "change_thresholds"),  # the old one stays, harmless: its model is gone
    }
