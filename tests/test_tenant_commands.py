import pytest
from django.core.management import CommandError, call_command

from catalog.models import ApiKey, Tenant, TenantSettings
from tests.conftest import error_code

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def printed_key(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("sm_"))


def test_create_tenant_prints_a_working_write_key(client):
    output = run("create_tenant", "shoe-shop", "--name", "Shoe Shop")
    tenant = Tenant.objects.get(slug="shoe-shop")
    assert tenant.name == "Shoe Shop"
    assert TenantSettings.objects.filter(tenant=tenant).exists()
    key = printed_key(output)
    response = client.post(
        "/api/v1/products/",
        {"sku": "S1", "title": "Shoe"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201


def test_create_tenant_refuses_a_duplicate_and_a_bad_slug():
    run("create_tenant", "shoe-shop")
    with pytest.raises(CommandError, match="already exists"):
        run("create_tenant", "shoe-shop")
    with pytest.raises(CommandError, match="not a valid slug"):
        run("create_tenant", "Bad Slug!")


def test_create_api_key_with_read_scope(client):
    run("create_tenant", "shoe-shop")
    key = printed_key(run("create_api_key", "shoe-shop", "--scope", "read"))
    assert ApiKey.find(key).scope == "read"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get("/api/v1/products/", **headers).status_code == 200
    response = client.post("/api/v1/products/", {"sku": "S1", "title": "x"}, content_type="application/json", **headers)
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"


def test_create_api_key_for_unknown_tenant_fails():
    with pytest.raises(CommandError, match="No tenant"):
        run("create_api_key", "nobody")


def test_slugs_keep_to_the_object_key_layout():
    from django.db import IntegrityError, transaction

    for bad in ("my_shop", "Shop", "shop!"):
        with pytest.raises(CommandError, match="not a valid slug"):
            run("create_tenant", bad)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.create(slug="Upper_Case", name="x")
