"""Retraining from the admin on a real worker, the versions list, and the
review list's one-click accept."""

import pytest

from catalog.models import Media
from search.models import RecognizerModel, RecognizerSuggestion
from search.recognizer import predictions, versions
from tests.catalogs import generated_catalog, unassigned, unit
from tests.conftest import wait_for
from tests.factories import TenantSettingsFactory

VERSIONS = "/admin/search/recognizermodel/"
REVIEW = "/admin/search/recognizersuggestion/"


@pytest.fixture
def model_setting(settings, tiny_model):
    settings.CLIP_MODEL = str(tiny_model)


def test_train_from_the_admin_on_a_worker_then_activate(staff, worker, tenant, model_setting):
    catalog = generated_catalog(tenant, products=6)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)  # everything waits for review
    item = unassigned(tenant, unit(catalog.centres[0] + catalog.centres[1]))

    assert "Train a new version" in staff.get(VERSIONS).content.decode()
    response = staff.post(f"{VERSIONS}train/", {"tenant": "acme"})
    assert response.status_code == 302
    version = RecognizerModel.objects.get(tenant=tenant)
    wait_for(
        lambda: RecognizerModel.objects.get(pk=version.pk).status == RecognizerModel.Status.READY,
        what="the worker to train the version",
    )
    version.refresh_from_db()
    assert version.created_by.username == "ops" and version.top1_accuracy > 0.5
    page = staff.get(VERSIONS).content.decode()
    assert f"{version.top1_accuracy * 100:.1f}%" in page

    staff.post(VERSIONS, {"action": "activate", "_selected_action": [version.pk]})
    version.refresh_from_db()
    assert version.is_active
    # The activation's predictions run on the worker too.
    suggestion = wait_for(lambda: RecognizerSuggestion.objects.filter(media=item).first(), what="predictions")
    assert {c["sku"] for c in suggestion.candidates[:2]} == {"GEN-000", "GEN-001"}


def test_a_training_version_shows_its_progress_and_the_page_refreshes(staff, tenant, model_setting):
    version = versions.start_training(tenant, enqueue=False)
    RecognizerModel.objects.filter(pk=version.pk).update(
        status=RecognizerModel.Status.TRAINING, progress=40, progress_message="fitting: epoch 120/300"
    )
    page = staff.get(VERSIONS).content.decode()
    assert '<progress max="100" value="40">' in page and "fitting: epoch 120/300" in page
    assert 'http-equiv="refresh"' in page


def test_a_second_training_of_a_tenant_is_refused_with_a_message(staff, tenant, model_setting):
    versions.start_training(tenant, enqueue=False)
    response = staff.post(f"{VERSIONS}train/", {"tenant": "acme"}, follow=True)
    assert "still queued" in response.content.decode()
    assert RecognizerModel.objects.count() == 1


def test_roll_back_action(staff, tenant, model_setting, broker):
    generated_catalog(tenant, products=4)
    first = versions.train(versions.start_training(tenant, enqueue=False))
    second = versions.train(versions.start_training(tenant, enqueue=False))
    versions.activate(first)
    versions.activate(second)
    staff.post(VERSIONS, {"action": "roll_back", "_selected_action": [second.pk]})
    assert RecognizerModel.objects.get(is_active=True) == first
    # The active version cannot be deleted from under the recognizer.
    assert staff.post(f"{VERSIONS}{first.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.fixture
def waiting(tenant, model_setting, broker):
    catalog = generated_catalog(tenant, products=5)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)
    item = unassigned(tenant, unit(catalog.centres[2] + catalog.centres[3]))
    versions.activate(versions.train(versions.start_training(tenant, enqueue=False)), predict=False)
    predictions.predict_unassigned(tenant)
    return RecognizerSuggestion.objects.get(media=item)


def test_the_review_list_offers_each_suggestion_as_a_button(staff, waiting):
    page = staff.get(REVIEW).content.decode()
    for candidate in waiting.candidates:
        assert f'name="product" value="{candidate["product"]}"' in page
        assert f"Accept {candidate['sku']} ({candidate['confidence'] * 100:.0f}%)" in page
    assert f'formaction="{REVIEW}{waiting.pk}/accept/"' in page


def test_accepting_in_one_click(staff, waiting):
    choice = waiting.candidates[1]
    response = staff.post(f"{REVIEW}{waiting.pk}/accept/", {"product": choice["product"]}, follow=True)
    assert f"is now {choice['sku']}" in response.content.decode()
    media = Media.objects.get(pk=waiting.media_id)
    assert media.product_id == choice["product"]
    assert not RecognizerSuggestion.objects.exists()
    assert response.context["cl"].result_count == 0  # gone from the list


def test_accepting_a_product_that_was_not_suggested_changes_nothing(staff, waiting, tenant):
    from tests.factories import ProductFactory

    stranger = ProductFactory(tenant=tenant)
    response = staff.post(f"{REVIEW}{waiting.pk}/accept/", {"product": stranger.pk}, follow=True)
    assert "That product is not one of this item" in response.content.decode()
    assert Media.objects.get(pk=waiting.media_id).product is None
    assert staff.get(f"{REVIEW}{waiting.pk}/accept/").status_code == 405  # POST only


def test_accept_best_action(staff, waiting):
    staff.post(REVIEW, {"action": "accept_best", "_selected_action": [waiting.pk]})
    assert Media.objects.get(pk=waiting.media_id).product_id == waiting.candidates[0]["product"]


def test_dismiss_leaves_the_media_unassigned(staff, waiting):
    staff.post(REVIEW, {"action": "dismiss", "_selected_action": [waiting.pk]})
    assert not RecognizerSuggestion.objects.exists()
    assert Media.objects.get(pk=waiting.media_id).product is None
