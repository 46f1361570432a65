from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import Media, Product
from ops_console.demo import COPY_NAMES
from ops_console.demo_media import SAMPLE_PRODUCTS

pytestmark = pytest.mark.django_db


def test_load_demo_prints_credentials_that_work(client):
    out = StringIO()
    call_command("load_demo", stdout=out)
    output = out.getvalue()

    assert Product.objects.filter(tenant__slug="demo").count() == len(SAMPLE_PRODUCTS)
    pending = Media.objects.filter(tenant__slug="demo", status=Media.Status.PENDING)
    assert pending.filter(kind=Media.Kind.IMAGE).count() == 3 * len(SAMPLE_PRODUCTS) + len(COPY_NAMES)
    assert f"{len(SAMPLE_PRODUCTS)} created" in output  # through POST /api/v1/products/bulk
    assert pending.filter(kind=Media.Kind.VIDEO).count() == 1

    api_key = next(word for word in output.split() if word.startswith("sm_"))
    response = client.get("/api/v1/products/", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert response.status_code == 200 and response.json()["count"] == len(SAMPLE_PRODUCTS)

    password = output.split("password '")[1].split("'")[0]
    assert client.login(username="admin", password=password)
    assert client.get("/admin/catalog/product/").status_code == 200


def test_load_demo_twice_adds_no_copies():
    call_command("load_demo", stdout=StringIO())
    out = StringIO()
    call_command("load_demo", stdout=out)
    assert Media.objects.count() == 3 * len(SAMPLE_PRODUCTS) + len(COPY_NAMES) + 1
    assert "0 new" in out.getvalue() and f"{len(SAMPLE_PRODUCTS)} unchanged" in out.getvalue()


def test_the_demo_tenant_has_settings_on_the_tiny_models_scale():
    from catalog.models import TenantSettings
    from ops_console.demo import DEMO_NEAR_DUPLICATE_SIMILARITY

    call_command("load_demo", stdout=StringIO())
    call_command("load_demo", stdout=StringIO())  # found again, not created twice
    assert TenantSettings.objects.get(tenant__slug="demo").near_duplicate_similarity == DEMO_NEAR_DUPLICATE_SIMILARITY


def test_the_demo_reports_its_duplicates_by_tier(clip):
    from media_pipeline.processing import process_batch
    from ops_console.management.commands.load_demo import Command

    call_command("load_demo", stdout=StringIO())
    demo_media = Media.objects.filter(tenant__slug="demo").order_by("pk")
    for media_id in demo_media.values_list("pk", flat=True):  # in upload order, as the worker takes them
        process_batch([media_id], f"task-{media_id}")
    assert set(demo_media.values_list("status", flat=True)) == {Media.Status.READY}

    tiers = {}
    for media in demo_media.exclude(duplicate_kind=""):
        tiers.setdefault(media.duplicate_kind, set()).add(media.original_filename)
    featured = SAMPLE_PRODUCTS[0].sku.lower()
    # Only the two copies uploaded on purpose are the same picture; distinct photos never are.
    assert tiers.get("near_identical") == {f"{featured}-{name}.jpg" for name in COPY_NAMES}
    assert "exact" not in tiers
    original = demo_media.get(original_filename=f"{featured}-0.jpg")
    assert set(demo_media.filter(duplicate_kind="near_identical").values_list("duplicate_of", flat=True)) == {
        original.pk
    }

    out = StringIO()
    command = Command(stdout=out)
    command._summary(original.tenant)
    report = out.getvalue()
    assert f"0 exact (same bytes), {len(COPY_NAMES)} near-identical" in report
    assert f"{len(tiers.get('similar', ()))} similar by CLIP" in report and "mean nothing" in report
