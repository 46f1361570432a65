"""The thresholds page shows what proposed values would do before they are saved."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from catalog.models import Media, TenantSettings, TenantSettingsChange
from tests.catalogs import embed, unit
from tests.factories import MediaFactory, RecognizerModelFactory, RecognizerSuggestionFactory, TenantSettingsFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(tenant, settings, tiny_model):
    """Two near-identical images and a different one; two items waiting for
    review at 60% and 80%; one item processing for 45 minutes."""
    settings.CLIP_MODEL = str(tiny_model)
    rng = np.random.default_rng(1)
    base = unit(rng.standard_normal(512))
    for vector in (base, unit(base + 0.05 * rng.standard_normal(512) / 22), unit(rng.standard_normal(512))):
        embed(MediaFactory(tenant=tenant, status=Media.Status.READY), [vector])
    version = RecognizerModelFactory(tenant=tenant)
    waiting = [
        RecognizerSuggestionFactory(media__tenant=tenant, recognizer=version, top_confidence=confidence).media
        for confidence in (0.6, 0.8)
    ]
    MediaFactory(
        tenant=tenant, status=Media.Status.PROCESSING, processing_started_at=timezone.now() - timedelta(minutes=45)
    )
    return {"thresholds": TenantSettingsFactory(tenant=tenant, auto_assign_confidence=0.9), "waiting": waiting}


def form(thresholds: TenantSettings, **values) -> dict:
    fields = ["min_similarity", "near_duplicate_similarity", "auto_assign_confidence", "stuck_after_minutes"]
    return {
        **{
            field: getattr(thresholds, field)
            for field in [*fields, "hnsw_ef_search", "search_cutoff", "relative_cutoff"]
        },
        **values,
    }


def test_preview_shows_the_effect_of_each_value_and_saves_nothing(staff, data):
    thresholds = data["thresholds"]
    url = f"/admin/catalog/tenantsettings/{thresholds.pk}/preview/"
    proposed = form(thresholds, near_duplicate_similarity=0.9999, auto_assign_confidence=0.7, stuck_after_minutes=60)
    response = staff.post(url, proposed)
    assert response.status_code == 200
    effects = {e.field: e for e in response.context["effects"]}
    assert effects["near_duplicate_similarity"].at_current.startswith("2 of 3 (67%) images have a near-duplicate")
    assert effects["near_duplicate_similarity"].at_proposed.startswith("0 of 3 (0%)")
    assert effects["auto_assign_confidence"].at_current == "0 of the 2 media in the review list reach it"
    assert effects["auto_assign_confidence"].at_proposed == "1 of the 2 media in the review list reach it"
    assert effects["stuck_after_minutes"].at_current == "1 media count as stuck"
    assert effects["stuck_after_minutes"].at_proposed == "0 media count as stuck"
    assert effects["min_similarity"].at_proposed == "(unchanged)"
    assert "no effect: 3 vectors are searched exactly" in effects["hnsw_ef_search"].at_current
    assert "Save these values" in response.content.decode()
    thresholds.refresh_from_db()
    assert thresholds.auto_assign_confidence == 0.9 and not TenantSettingsChange.objects.exists()


def test_confirming_the_preview_saves_records_and_assigns(staff, data):
    thresholds = data["thresholds"]
    url = f"/admin/catalog/tenantsettings/{thresholds.pk}/preview/"
    preview_page = staff.post(url, form(thresholds, auto_assign_confidence=0.7)).content.decode()
    # Post back exactly what the preview page's "Save these values" form holds.
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', preview_page))
    response = staff.post(url, {**hidden, "_confirm": "1"}, follow=True)
    assert "1 media of the review list reached the new auto-assign confidence" in response.content.decode()
    thresholds.refresh_from_db()
    assert thresholds.auto_assign_confidence == 0.7
    [change] = TenantSettingsChange.objects.all()
    assert (change.field, change.old_value, change.new_value, change.changed_by.username) == (
        "auto_assign_confidence",
        "0.9",
        "0.7",
        "ops",
    )
    sure, unsure = (Media.objects.get(pk=m.pk) for m in reversed(data["waiting"]))
    assert sure.product is not None and unsure.product is None  # 0.8 reached 0.7; 0.6 did not


def test_an_invalid_preview_says_so(staff, data):
    thresholds = data["thresholds"]
    response = staff.post(
        f"/admin/catalog/tenantsettings/{thresholds.pk}/preview/", form(thresholds, min_similarity=1.5)
    )
    assert response.context["effects"] is None
    assert "not valid" in response.content.decode()
    response = staff.post(
        f"/admin/catalog/tenantsettings/{thresholds.pk}/preview/",
        {**form(thresholds, min_similarity=1.5), "_confirm": "1"},
    )
    thresholds.refresh_from_db()
    assert thresholds.min_similarity == 0.2  # not saved


def test_the_change_page_offers_the_preview(staff, data):
    page = staff.get(f"/admin/catalog/tenantsettings/{data['thresholds'].pk}/change/").content.decode()
    assert f'formaction="/admin/catalog/tenantsettings/{data["thresholds"].pk}/preview/"' in page
