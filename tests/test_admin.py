import re

import pytest

from catalog.models import ApiKey, Media
from media_pipeline.models import RejectedS3Event
from tests.factories import EmbeddingFactory, MediaFactory, TenantSettingsFactory, VideoFrameFactory

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "/admin/catalog/tenant/",
    "/admin/catalog/apikey/",
    "/admin/catalog/product/",
    "/admin/catalog/media/",
    "/admin/catalog/videoframe/",
    "/admin/catalog/embedding/",
    "/admin/catalog/tenantsettings/",
    "/admin/media_pipeline/rejecteds3event/",
]


@pytest.fixture
def rows(tenant):
    video = MediaFactory(tenant=tenant, kind=Media.Kind.VIDEO, status=Media.Status.FAILED, error="no stream")
    EmbeddingFactory(media=MediaFactory(tenant=tenant), frame=None)
    VideoFrameFactory(media=video)
    TenantSettingsFactory(tenant=tenant)
    RejectedS3Event.objects.create(key="clients/nobody/x.jpg", tenant_slug="nobody", reason="No tenant 'nobody'.")


@pytest.mark.parametrize("url", CHANGELISTS)
def test_admin_is_staff_only(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("url", CHANGELISTS)
def test_changelists_load_for_staff(staff, rows, url):
    response = staff.get(url)
    assert response.status_code == 200


def test_media_changelist_filters_by_status_kind_and_tenant(staff, rows, tenant):
    response = staff.get(
        "/admin/catalog/media/", {"status__exact": "failed", "kind__exact": "video", "tenant__id__exact": tenant.pk}
    )
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_adding_a_key_in_the_admin_shows_it_once_and_stores_a_hash(staff, tenant):
    response = staff.post(
        "/admin/catalog/apikey/add/", {"tenant": tenant.pk, "name": "shop frontend", "scope": "read"}, follow=True
    )
    assert response.status_code == 200
    shown = re.search(r"sm_[0-9a-f]{8}_[A-Za-z0-9_-]+", response.content.decode())
    assert shown, "the new key must be shown to the operator"
    key = ApiKey.objects.get(name="shop frontend")
    assert ApiKey.find(shown.group(0)) == key
    assert shown.group(0).split("_", 2)[2] not in key.secret_hash


def test_revoke_action(staff, tenant):
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(tenant=tenant)
    staff.post("/admin/catalog/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.is_revoked
    assert ApiKey.find(key.plaintext) is None


def test_reprocess_action_requeues_failed_media(staff, rows):
    failed = Media.objects.get(status=Media.Status.FAILED)
    staff.post("/admin/catalog/media/", {"action": "reprocess", "_selected_action": [failed.pk]})
    failed.refresh_from_db()
    assert failed.status == Media.Status.PENDING and failed.error == ""


def test_thresholds_form_refuses_out_of_range_values(staff, tenant):
    thresholds = TenantSettingsFactory(tenant=tenant)
    response = staff.post(
        f"/admin/catalog/tenantsettings/{thresholds.pk}/change/",
        {
            "tenant": tenant.pk,
            "min_similarity": 1.4,
            "near_duplicate_similarity": 0.95,
            "auto_assign_confidence": 0.9,
            "stuck_after_minutes": 30,
            "hnsw_ef_search": 5,
            "search_cutoff": "none",
            "relative_cutoff": 0.1,
        },
    )
    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors
    assert "min_similarity" in errors and "hnsw_ef_search" in errors


def test_near_duplicates_are_listed(staff, tenant):
    original = MediaFactory(tenant=tenant)
    copy = MediaFactory(tenant=tenant, duplicate_of=original, duplicate_similarity=0.99)
    MediaFactory(tenant=tenant)
    response = staff.get("/admin/catalog/media/", {"near_duplicate": "yes"})
    assert [m.pk for m in response.context["cl"].result_list] == [copy.pk]
    response = staff.get("/admin/catalog/media/", {"near_duplicate": "original"})
    assert [m.pk for m in response.context["cl"].result_list] == [original.pk]


def test_reprocess_works_on_a_filtered_distinct_list(staff, tenant):
    original = MediaFactory(tenant=tenant, status=Media.Status.FAILED)
    MediaFactory.create_batch(2, tenant=tenant, duplicate_of=original)
    response = staff.post(
        "/admin/catalog/media/?near_duplicate=original", {"action": "reprocess", "_selected_action": [original.pk]}
    )
    assert response.status_code == 302
    original.refresh_from_db()
    assert original.status == Media.Status.PENDING


def test_threshold_changes_are_recorded_with_who_and_what(staff, tenant):
    from catalog.models import TenantSettingsChange

    thresholds = TenantSettingsFactory(tenant=tenant)
    form = {
        "tenant": tenant.pk,
        "min_similarity": 0.35,
        "near_duplicate_similarity": 0.95,
        "auto_assign_confidence": 0.9,
        "stuck_after_minutes": 15,
        "hnsw_ef_search": 100,
        "search_cutoff": "relative",
        "relative_cutoff": 0.1,
        "changes-TOTAL_FORMS": 0,
        "changes-INITIAL_FORMS": 0,
    }
    response = staff.post(f"/admin/catalog/tenantsettings/{thresholds.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    changes = {c.field: (c.old_value, c.new_value, c.changed_by.username) for c in TenantSettingsChange.objects.all()}
    assert changes == {
        "min_similarity": ("0.2", "0.35", "ops"),
        "stuck_after_minutes": ("30", "15", "ops"),
        "search_cutoff": ("none", "relative", "ops"),
    }
    thresholds.refresh_from_db()
    assert thresholds.min_similarity == 0.35 and thresholds.updated_by.username == "ops"
    page = staff.get(f"/admin/catalog/tenantsettings/{thresholds.pk}/change/").content.decode()
    assert "change history" in page.lower() and "0.35" in page


def test_a_tenant_added_in_the_admin_gets_its_settings(staff):
    from catalog.models import Tenant, TenantSettings

    response = staff.post("/admin/catalog/tenant/add/", {"slug": "new-shop", "name": "New Shop", "is_active": "on"})
    assert response.status_code == 302, response.content.decode()
    tenant = Tenant.objects.get(slug="new-shop")
    assert TenantSettings.objects.get(tenant=tenant).min_similarity == TenantSettings.default("min_similarity")
    assert staff.get(f"/admin/catalog/tenantsettings/{tenant.settings.pk}/change/").status_code == 200
    assert staff.get("/admin/catalog/tenantsettings/add/").status_code == 403  # only with their tenant
