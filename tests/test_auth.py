import pytest
from django.utils import timezone

from catalog.models import ApiKey
from tests.conftest import client_for, error_code
from tests.factories import ApiKeyFactory, TenantFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products/"


def test_missing_key_is_401(client):
    response = client.get(PRODUCTS)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    ["Bearer sm_deadbeef_not-a-real-secret", "Bearer garbage", "Token abc", "Bearer", "Bearer a b"],
)
def test_bad_key_is_401(client, tenant, header):
    response = client.get(PRODUCTS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_right_prefix_wrong_secret_is_401(client, tenant):
    key = ApiKeyFactory(tenant=tenant)
    forged = key.plaintext[:-4] + "AAAA"
    response = client.get(PRODUCTS, HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401


def test_revoked_key_is_refused_at_once(tenant):
    key = ApiKeyFactory(tenant=tenant)
    api = client_for(key)
    assert api.get(PRODUCTS).status_code == 200
    key.revoke()
    response = api.get(PRODUCTS)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


def test_read_key_cannot_write(read_api):
    response = read_api.post(PRODUCTS, {"sku": "A1", "title": "A"}, format="json")
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"


def test_read_key_can_read(read_api):
    assert read_api.get(PRODUCTS).status_code == 200


def test_tenant_header_must_match_the_key(api, tenant, other_tenant):
    assert api.get(PRODUCTS, HTTP_X_TENANT_SLUG=tenant.slug).status_code == 200
    response = api.get(PRODUCTS, HTTP_X_TENANT_SLUG=other_tenant.slug)
    assert response.status_code == 403
    assert error_code(response) == "tenant_mismatch"


def test_inactive_tenant_is_refused(tenant, api):
    tenant.is_active = False
    tenant.save()
    response = api.get(PRODUCTS)
    assert response.status_code == 403
    assert error_code(response) == "tenant_inactive"


def test_last_used_at_is_recorded(tenant):
    key = ApiKeyFactory(tenant=tenant)
    assert key.last_used_at is None
    before = timezone.now()
    client_for(key).get(PRODUCTS)
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_at >= before


def test_keys_are_stored_only_hashed(tenant):
    key = ApiKeyFactory(tenant=tenant)
    secret = key.plaintext.split("_", 2)[2]
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert all(secret not in str(value) for value in stored.values())
    assert key.plaintext not in str(stored)
    assert len(stored["secret_hash"]) == 64


def test_key_of_another_tenant_only_sees_that_tenant():
    first, second = TenantFactory(slug="one"), TenantFactory(slug="two")
    key = ApiKeyFactory(tenant=second)
    assert ApiKey.find(key.plaintext).tenant == second
    assert ApiKey.find(key.plaintext).tenant != first
