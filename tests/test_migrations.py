"""The move of each tenant's thresholds to catalog.TenantSettings keeps the
values and the change history, and gives a tenant without a row the defaults."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("catalog", "0008_tenant_settings"), ("search", "0006_embedding_to_catalog")]
CHANGED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_thresholds_become_tenant_settings_with_their_history():
    old = migrate(BEFORE)
    tenant_model, thresholds_model = old.get_model("catalog", "Tenant"), old.get_model("search", "Thresholds")
    tuned = tenant_model.objects.create(slug="tuned", name="Tuned")
    untouched = tenant_model.objects.create(slug="untouched", name="Untouched")
    thresholds = thresholds_model.objects.create(
        tenant=tuned, min_similarity=0.31, near_duplicate_similarity=0.97, stuck_after_minutes=12, hnsw_ef_search=80
    )
    change = old.get_model("search", "ThresholdChange").objects.create(
        thresholds=thresholds, field="min_similarity", old_value="0.2", new_value="0.31"
    )
    old.get_model("search", "ThresholdChange").objects.filter(pk=change.pk).update(changed_at=CHANGED_AT)

    new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    settings_model = new.get_model("catalog", "TenantSettings")
    kept = settings_model.objects.get(tenant_id=tuned.pk)
    assert (kept.min_similarity, kept.near_duplicate_similarity, kept.stuck_after_minutes, kept.hnsw_ef_search) == (
        0.31,
        0.97,
        12,
        80,
    )
    defaults = settings_model.objects.get(tenant_id=untouched.pk)
    assert (defaults.min_similarity, defaults.stuck_after_minutes) == (0.2, 30)
    [history] = new.get_model("catalog", "TenantSettingsChange").objects.filter(tenant_settings=kept)
    assert (history.field, history.old_value, history.new_value, history.changed_at) == (
        "min_similarity",
        "0.2",
        "0.31",
        CHANGED_AT,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('search_thresholds'), to_regclass('catalog_embedding')")
        assert cursor.fetchone() == (None, "catalog_embedding")
