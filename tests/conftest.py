from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from catalog.models import ApiKey
from tests.factories import ApiKeyFactory, TenantFactory


@pytest.fixture(autouse=True)
def media_storage(settings, tmp_path):
    """Each test stores files in its own directory (through Django's storage API)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media", "base_url": "/media/"},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex")


def client_for(key: ApiKey) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    return client


@pytest.fixture
def api(tenant) -> APIClient:
    """A client with a write key of `tenant`."""
    return client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.WRITE))


@pytest.fixture
def read_api(tenant) -> APIClient:
    return client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))


@pytest.fixture
def other_api(other_tenant) -> APIClient:
    """A write client of another tenant."""
    return client_for(ApiKeyFactory(tenant=other_tenant, scope=ApiKey.Scope.WRITE))


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]["code"]
