"""Every 4xx/5xx under /api/ has the API.md body, DRF's and Django's own included."""

import pytest
from django.test import Client

from tests.conftest import error_code

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_json_404(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert error_code(response) == "not_found"


def test_unknown_url_outside_the_api_stays_html(client):
    response = client.get("/not-an-api-page/")
    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


def test_wrong_method_is_405(api):
    response = api.put("/api/v1/media/", {}, format="json")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_malformed_json_is_400(api):
    response = api.generic("POST", "/api/v1/products/", b'{"sku": "A1", ', content_type="application/json")
    assert response.status_code == 400
    assert error_code(response) == "parse_error"


def test_unsupported_request_content_type_is_415(api):
    response = api.generic("POST", "/api/v1/products/", b"<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_validation_error_names_the_fields(api):
    response = api.post("/api/v1/products/", {"sku": 5}, format="json")
    body = response.json()
    assert response.status_code == 400
    assert body["error"]["code"] == "validation_error"
    assert "title" in body["error"]["detail"]


def test_bad_page_is_404(api):
    response = api.get("/api/v1/products/", {"page": 99})
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_server_error_under_api_is_json_500(settings):
    settings.ROOT_URLCONF = "tests.urls_with_failure"
    response = Client(raise_request_exception=False).get("/api/v1/crash/")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "server_error", "message": "An unexpected error occurred; it has been logged."}
    }
