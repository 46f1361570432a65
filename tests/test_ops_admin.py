from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Media
from tests.factories import EmbeddingFactory, MediaFactory, TenantSettingsFactory

pytestmark = pytest.mark.django_db

STUCK = "/admin/ops_console/stuckmedia/"
FAILED = "/admin/ops_console/failedmedia/"


def processing(tenant, minutes: int, attempts: int = 1) -> Media:
    return MediaFactory(
        tenant=tenant,
        status=Media.Status.PROCESSING,
        claim_token=f"task-{minutes}",
        attempts=attempts,
        processing_started_at=timezone.now() - timedelta(minutes=minutes),
    )


def test_stuck_list_is_oldest_first_by_each_tenants_threshold(staff, tenant, other_tenant):
    TenantSettingsFactory(tenant=other_tenant, stuck_after_minutes=120)
    older, old = processing(tenant, 300, attempts=2), processing(tenant, 45)
    processing(tenant, 5)  # still working
    processing(other_tenant, 60)  # within its tenant's threshold
    response = staff.get(STUCK)
    assert response.status_code == 200
    assert [m.pk for m in response.context["cl"].result_list] == [older.pk, old.pk]
    content = response.content.decode()
    assert "5 h 0 min" in content and "45 min" in content


def test_stuck_actions(staff, tenant):
    first, second = processing(tenant, 60), processing(tenant, 90)
    EmbeddingFactory(media=second)  # a partial result of the lost run
    staff.post(STUCK, {"action": "requeue", "_selected_action": [first.pk]})
    staff.post(STUCK, {"action": "mark_failed", "_selected_action": [second.pk]})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Media.Status.PENDING and first.claim_token == ""
    assert second.status == Media.Status.FAILED and "Marked failed by ops" in second.error
    assert not second.embeddings.exists()


def failed(tenant, reason: str) -> Media:
    return MediaFactory(tenant=tenant, status=Media.Status.FAILED, error=reason, processed_at=timezone.now())


def test_failed_items_are_grouped_by_reason_with_counts(staff, tenant):
    for _ in range(3):
        failed(tenant, "The image is truncated or corrupt.")
    failed(tenant, "The file has no video stream (is it audio only?).")
    MediaFactory(tenant=tenant, status=Media.Status.READY)
    response = staff.get(FAILED)
    assert response.context["cl"].result_count == 4
    content = response.content.decode()
    assert "The image is truncated or corrupt. (3)" in content
    assert "The file has no video stream (is it audio only?). (1)" in content
    response = staff.get(FAILED, {"reason": "The image is truncated or corrupt."})
    assert response.context["cl"].result_count == 3


def test_reprocess_every_item_of_one_reason(staff, tenant):
    corrupt = [failed(tenant, "The image is truncated or corrupt.") for _ in range(3)]
    other = failed(tenant, "The stored file is missing.")
    response = staff.post(
        f"{FAILED}?reason=The+image+is+truncated+or+corrupt.",
        {"action": "reprocess", "select_across": "1", "_selected_action": [corrupt[0].pk]},
    )
    assert response.status_code == 302
    assert {m.status for m in Media.objects.filter(pk__in=[m.pk for m in corrupt])} == {Media.Status.PENDING}
    other.refresh_from_db()
    assert other.status == Media.Status.FAILED


def test_operator_lists_are_staff_only(client):
    for url in (STUCK, FAILED):
        assert client.get(url).status_code == 302
