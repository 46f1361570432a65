"""The product recognizer: training on a generated catalog, versions,
predictions for unassigned media and the auto-assign threshold."""

import numpy as np
import pytest

from catalog.errors import Conflict
from catalog.models import Embedding, Media, TenantSettings
from search.models import RecognizerModel, RecognizerSuggestion
from search.recognizer import predictions, review, training_data, versions
from search.tuning import save_with_effects
from tests.catalogs import generated_catalog, unassigned, unit
from tests.factories import TenantSettingsFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_setting(settings, tiny_model):
    """The pipeline embeds with the suite's tiny model, whose vectors are stored as `clip-tiny`."""
    settings.CLIP_MODEL = str(tiny_model)


def trained(tenant) -> RecognizerModel:
    return versions.train(versions.start_training(tenant, enqueue=False))


def test_training_on_a_generated_catalog_is_far_above_chance(tenant, model_setting):
    generated_catalog(tenant, products=20, media_per_product=6, noise=3.0)
    version = trained(tenant)
    assert version.status == RecognizerModel.Status.READY, version.error
    # 20 products: chance is 5%.
    assert version.top1_accuracy >= 0.8
    assert version.top5_accuracy >= version.top1_accuracy
    assert version.classes == 20
    # One of each product's six media is held out; the video's 4 frames count once.
    assert (version.train_media, version.test_media) == (100, 20)
    data = training_data.load_training_data(tenant, "clip-tiny")
    held = training_data.held_out_media(data.media_ids, data.labels)
    assert version.train_samples == sum(m not in held for m in data.media_ids.tolist())
    assert version.embedding_model == "clip-tiny"
    assert version.training_seconds > 0 and version.progress == 100 and version.parameters


def test_retraining_unchanged_data_reproduces_the_metrics(tenant, model_setting):
    generated_catalog(tenant, noise=4.0)  # noisy enough that the metrics are not simply 100%
    first, second = trained(tenant), trained(tenant)
    assert second.version == first.version + 1
    assert first.top1_accuracy < 1.0
    fields = ["top1_accuracy", "top5_accuracy", "classes", "train_samples", "train_media", "test_media"]
    assert [getattr(first, f) for f in fields] == [getattr(second, f) for f in fields]


def test_held_out_split_keeps_whole_media_and_every_product(tenant):
    # Product 0: five media, one a video of three frames; product 1: two
    # images; product 2: one image only.
    media_ids = np.array([1, 2, 2, 2, 3, 4, 5, 6, 7, 8])
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 0])
    held = training_data.held_out_media(media_ids, labels, fraction=0.2)
    per_product = {label: {m for m, lab in zip(media_ids, labels, strict=True) if lab == label} for label in (0, 1, 2)}
    assert len(held & per_product[0]) == 1  # a fifth of 5 media
    assert len(held & per_product[1]) == 1  # at least one, never both
    assert not held & per_product[2]  # a product's only media trains
    assert training_data.held_out_media(media_ids, labels, fraction=0.2) == held  # seeded


def test_too_little_data_fails_with_the_reason(tenant, model_setting):
    generated_catalog(tenant, products=1)
    version = trained(tenant)
    assert version.status == RecognizerModel.Status.FAILED
    assert "at least two products" in version.error
    assert not version.parameters


def test_an_unexpected_error_fails_the_version_with_its_reason(tenant, model_setting, monkeypatch):
    generated_catalog(tenant, products=3)

    def broken(*args, **kwargs):
        raise ValueError("shapes do not match")

    monkeypatch.setattr(versions, "fit", broken)
    version = trained(tenant)
    assert version.status == RecognizerModel.Status.FAILED
    assert version.error == "Training error: ValueError: shapes do not match"
    assert versions.start_training(tenant, enqueue=False).version == 2  # not blocked by it


def test_one_training_per_tenant_at_a_time(tenant, other_tenant, model_setting):
    versions.start_training(tenant, enqueue=False)
    with pytest.raises(Conflict, match="still queued"):
        versions.start_training(tenant, enqueue=False)
    assert versions.start_training(other_tenant, enqueue=False).version == 1  # numbered per tenant


def test_versions_activate_and_roll_back(tenant, model_setting, broker):
    generated_catalog(tenant, products=5)
    first, second = trained(tenant), trained(tenant)
    with pytest.raises(Conflict, match="no earlier active version"):
        versions.rollback(tenant)
    versions.activate(first)
    versions.activate(second)
    assert list(RecognizerModel.objects.active().filter(tenant=tenant)) == [second]
    assert versions.rollback(tenant) == first
    assert list(RecognizerModel.objects.active().filter(tenant=tenant)) == [first]
    assert versions.rollback(tenant) == second  # and forward again


def test_a_failed_version_or_one_of_another_clip_model_cannot_be_activated(tenant, model_setting, settings):
    generated_catalog(tenant, products=1)
    with pytest.raises(Conflict, match="only a trained version"):
        versions.activate(trained(tenant))
    generated_catalog(tenant, products=3, seed=3, sku_prefix="MORE")
    version = trained(tenant)
    settings.CLIP_MODEL = "openai/clip-vit-base-patch32"
    with pytest.raises(Conflict, match="train a new version"):
        versions.activate(version)


def confident_and_unsure(tenant, catalog):
    """An unassigned item right on product 0, and one halfway between products 1 and 2."""
    sure = unassigned(tenant, catalog.centres[0])
    unsure = unassigned(tenant, unit(catalog.centres[1] + catalog.centres[2]))
    return sure, unsure


def test_auto_assign_and_the_review_list_follow_the_threshold(tenant, model_setting, broker):
    catalog = generated_catalog(tenant, products=10, noise=1.0)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=0.9)
    sure, unsure = confident_and_unsure(tenant, catalog)
    versions.activate(trained(tenant), predict=False)

    report = predictions.predict_unassigned(tenant)

    assert (report.assigned, report.waiting) == (1, 1)
    sure.refresh_from_db()
    assert sure.product == catalog.products[0]
    assert set(Embedding.objects.filter(media=sure).values_list("product", flat=True)) == {catalog.products[0].pk}
    suggestion = RecognizerSuggestion.objects.get(media=unsure)
    assert len(suggestion.candidates) == 3
    assert {c["sku"] for c in suggestion.candidates[:2]} == {"GEN-001", "GEN-002"}
    assert suggestion.top_confidence < 0.9
    assert Media.objects.get(pk=unsure.pk).product is None

    # Lowering the threshold below the waiting item's confidence assigns it on save.
    thresholds = TenantSettings.objects.get(tenant=tenant)
    thresholds.auto_assign_confidence = round(suggestion.top_confidence - 0.01, 3)
    saved = save_with_effects(thresholds, None)
    assert saved.assigned == 1
    unsure.refresh_from_db()
    assert unsure.product.sku == suggestion.candidates[0]["sku"]
    assert not RecognizerSuggestion.objects.exists()


def test_predictions_are_per_tenant(tenant, other_tenant, model_setting, broker):
    catalog = generated_catalog(tenant, products=5)
    theirs = unassigned(other_tenant, catalog.centres[0])
    versions.activate(trained(tenant), predict=False)
    predictions.predict_unassigned(tenant)
    theirs.refresh_from_db()
    assert theirs.product is None and not RecognizerSuggestion.objects.filter(media=theirs).exists()


def test_accepting_a_suggestion(tenant, model_setting, broker):
    catalog = generated_catalog(tenant, products=5)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)  # everything waits for review
    item = unassigned(tenant, catalog.centres[3])
    versions.activate(trained(tenant), predict=False)
    predictions.predict_unassigned(tenant)
    suggestion = RecognizerSuggestion.objects.get(media=item)
    second_choice = suggestion.candidates[1]["product"]

    outsider = next(p for p in catalog.products if p.pk not in {c["product"] for c in suggestion.candidates})
    with pytest.raises(Conflict, match="not one of"):
        review.accept_suggestion(suggestion, outsider.pk)
    product = review.accept_suggestion(suggestion, second_choice)

    item.refresh_from_db()
    assert item.product == product and product.pk == second_choice
    assert not RecognizerSuggestion.objects.filter(media=item).exists()


def test_a_new_activation_replaces_the_suggestions_of_the_old_version(tenant, model_setting, broker):
    catalog = generated_catalog(tenant, products=5)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)
    item = unassigned(tenant, catalog.centres[2])
    first, second = trained(tenant), trained(tenant)
    versions.activate(first, predict=False)
    predictions.predict_unassigned(tenant)
    versions.activate(second, predict=False)
    predictions.predict_unassigned(tenant)
    assert RecognizerSuggestion.objects.get(media=item).recognizer == second


def test_an_item_that_failed_leaves_the_review_list_and_cannot_be_assigned(tenant):
    from catalog import transitions
    from tests.factories import RecognizerSuggestionFactory

    suggestion = RecognizerSuggestionFactory(tenant=tenant)
    assert list(RecognizerSuggestion.objects.waiting()) == [suggestion]
    transitions.fail(Media.objects.filter(pk=suggestion.media_id), "The stored file is missing.")

    assert not RecognizerSuggestion.objects.waiting().exists()
    assert review.waiting_at(tenant, 0.0) == 0
    suggestion.refresh_from_db()
    with pytest.raises(Conflict, match="failed"):
        review.accept_suggestion(suggestion, suggestion.candidates[0]["product"])
    assert Media.objects.get(pk=suggestion.media_id).product_id is None
