"""`manage.py train_recognizer`, and the recognizer predicting for new
unassigned uploads as the worker processes them (real images, the tiny CLIP)."""

from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from catalog.models import Media
from search.models import RecognizerModel, RecognizerSuggestion
from tests.catalogs import generated_catalog, unassigned, unit
from tests.conftest import wait_for, wait_until_settled
from tests.factories import ProductFactory, TenantSettingsFactory
from tests.media_files import jpeg_bytes


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def model_setting(settings, tiny_model):
    settings.CLIP_MODEL = str(tiny_model)


@pytest.mark.django_db
def test_inline_training_with_activation_reports_metrics_and_predicts(tenant, model_setting):
    catalog = generated_catalog(tenant, products=8)
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=0.9)
    sure = unassigned(tenant, catalog.centres[5])
    unsure = unassigned(tenant, unit(catalog.centres[1] + catalog.centres[2]))

    out = run("train_recognizer", "acme", "--inline", "--activate")

    version = RecognizerModel.objects.get(tenant=tenant)
    assert version.is_active and version.status == RecognizerModel.Status.READY
    assert f"top-1 {version.top1_accuracy:.1%}" in out and "8 products" in out
    assert "100%|" in out  # the progress bar reached its end
    assert "1 assigned, 1 waiting for review" in out
    assert Media.objects.get(pk=sure.pk).product == catalog.products[5]
    assert RecognizerSuggestion.objects.filter(media=unsure).exists()


@pytest.mark.django_db
def test_no_wait_only_queues(tenant, model_setting, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = run("train_recognizer", "acme", "--no-wait")
    assert "Version 1 of acme's recognizer queued." in out
    assert RecognizerModel.objects.get(tenant=tenant).status == RecognizerModel.Status.QUEUED
    assert broker.llen("maintenance") == 1


@pytest.mark.django_db
def test_a_failed_training_is_an_error_with_the_reason(tenant, model_setting):
    with pytest.raises(CommandError, match="at least two products"):
        run("train_recognizer", "acme", "--inline")


@pytest.mark.django_db
def test_an_unknown_tenant_is_an_error():
    with pytest.raises(CommandError, match="No tenant"):
        run("train_recognizer", "nobody", "--inline")


def test_following_a_worker_and_predicting_for_a_new_upload(worker, api, tenant, model_setting):
    TenantSettingsFactory(tenant=tenant, auto_assign_confidence=1.0)  # review everything
    # Three products photographed three times each, in their own colours.
    colours = {"RED": (200, 30, 40), "BLUE": (30, 40, 200), "GREEN": (40, 190, 50)}
    ids = []
    for sku, colour in colours.items():
        ProductFactory(tenant=tenant, sku=sku)
        for seed in range(3):
            data = jpeg_bytes(160, 120, colour, seed=seed)
            response = api.post(
                "/api/v1/media/", {"file": SimpleUploadedFile(f"{sku}{seed}.jpg", data), "product": sku}
            )
            ids.append(response.json()["id"])
    wait_until_settled(ids)

    out = run("train_recognizer", "acme", "--activate", "--timeout", "120")

    assert "Version 1: top-1 100.0%" in out
    response = api.post(
        "/api/v1/media/", {"file": SimpleUploadedFile("new.jpg", jpeg_bytes(160, 120, colours["BLUE"], seed=9))}
    )
    new_id = response.json()["id"]
    wait_until_settled([new_id])
    suggestion = wait_for(lambda: RecognizerSuggestion.objects.filter(media_id=new_id).first(), what="a prediction")
    assert suggestion.candidates[0]["sku"] == "BLUE"
