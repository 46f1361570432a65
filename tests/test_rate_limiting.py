"""Requests per API key are limited (API_RATE_LIMIT): over it, 429
`rate_limited` with Retry-After; other keys keep their own budget, and the
budget holds when many clients race through several server processes."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

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


CLIENTS = 16
REQUESTS_PER_CLIENT = 40
BUDGET = 200


def test_the_budget_holds_for_concurrent_clients_across_processes(tenant, transactional_db, tiny_model, tmp_path):
    from tests.web_server import gunicorn_argv, request, server_env, serving

    key = ApiKeyFactory(tenant=tenant, scope=ApiKey.Scope.READ).plaintext
    env = server_env(tmp_path / "media", str(tiny_model), "stockmind-rate-limit", API_RATE_LIMIT=f"{BUDGET}/min")

    def client(_: int) -> Counter:
        return Counter(request(port, "GET", "/api/v1/products/", key)[0] for _ in range(REQUESTS_PER_CLIENT))

    # 2 processes x 8 threads, as the Dockerfile runs gunicorn; 640 requests,
    # all well within the minute.
    with serving(lambda port: gunicorn_argv(port, 2, 8), env, tmp_path / "gunicorn.log") as port:
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = sum(pool.map(client, range(CLIENTS)), Counter())
    assert set(statuses) == {200, 429}, statuses
    assert abs(statuses[200] - BUDGET) <= BUDGET * 0.02, statuses
