from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import Media, Product
from ops_console.demo_media import SAMPLE_PRODUCTS

pytestmark = pytest.mark.django_db


def test_load_demo_prints_credentials_that_work(client):
    out = StringIO()
    call_command("load_demo", stdout=out)
    output = out.getvalue()

    assert Product.objects.filter(tenant__slug="demo").count() == len(SAMPLE_PRODUCTS)
    pending = Media.objects.filter(tenant__slug="demo", status=Media.Status.PENDING)
    assert pending.filter(kind=Media.Kind.IMAGE).count() == 3 * len(SAMPLE_PRODUCTS)
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
    assert Media.objects.count() == 3 * len(SAMPLE_PRODUCTS) + 1
    assert "0 new" in out.getvalue()


def test_the_demo_tenant_has_settings_on_the_tiny_models_scale():
    from catalog.models import TenantSettings
    from ops_console.demo import DEMO_NEAR_DUPLICATE_SIMILARITY

    call_command("load_demo", stdout=StringIO())
    call_command("load_demo", stdout=StringIO())  # found again, not created twice
    assert TenantSettings.objects.get(tenant__slug="demo").near_duplicate_similarity == DEMO_NEAR_DUPLICATE_SIMILARITY
