"""Requests per API key are limited (API_RATE_LIMIT): over it, 429
`rate_limited` with Retry-After; other keys keep their own budget."""

import pytest

from catalog.models import ApiKey
from tests.conftest import client_for, error_code
from tests.factories import ApiKeyFactory
from tests.test_embedded_services import settings_value

pytestmark = pytest.mark.django_db


def test_a_key_over_its_limit_gets_429_with_retry_after_and_other_keys_do_not(tenant, settings):
    settings.API_RATE_LIMIT = "3/min"
    busy = client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))
    other = client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))

    statuses = [busy.get("/api/v1/products/").status_code for _ in range(3)]
    refused = busy.get("/api/v1/products/")

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert other.get("/api/v1/products/").status_code == 200


def test_an_empty_limit_turns_limiting_off(tenant, settings):
    settings.API_RATE_LIMIT = ""
    client = client_for(ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ))
    assert {client.get("/api/v1/products/").status_code for _ in range(5)} == {200}


def test_a_malformed_limit_stops_start_up(tmp_path):
    output = settings_value(
        "1", STOCKMIND_SERVICES_ENV=str(tmp_path / "none.env"), DJANGO_SECRET_KEY="x" * 50, API_RATE_LIMIT="lots"
    )
    assert "ImproperlyConfigured" in output and "API_RATE_LIMIT" in output
