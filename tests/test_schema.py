import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_catalog_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    for path in [
        "/api/v1/products/",
        "/api/v1/products/{sku}/",
        "/api/v1/media/",
        "/api/v1/media/{id}/reprocess/",
        "/api/v1/search/image",
        "/api/v1/search/text",
        "/api/v1/search/similar/{media_id}",
    ]:
        assert path in schema["paths"], path
    assert "ApiKey" in schema["components"]["securitySchemes"]
    assert "multipart/form-data" in schema["paths"]["/api/v1/media/"]["post"]["requestBody"]["content"]


def test_docs_page_is_served_with_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr" not in response.content


def test_health(client):
    response = client.get("/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
