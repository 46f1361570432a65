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


def test_every_operation_documents_its_errors_and_refuses_unknown_fields(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"401", "403", "404", "429", "503"} <= documented, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= documented, (method, path)
            error = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
    bodies = [name for name in schema["components"]["schemas"] if name.endswith("Request")]
    assert bodies and all(schema["components"]["schemas"][name]["additionalProperties"] is False for name in bodies)
