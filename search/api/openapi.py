"""What the OpenAPI schema (every app's API) says besides what drf-spectacular
reads from the views: the error answers every operation can give, in the one error body of
catalog/api/errors.py, and request bodies that refuse fields they do not
know (catalog.api.serializers.StrictSerializer). tests/test_api_fuzz.py runs
a schema-driven fuzzer over every operation to hold the schema to the server.
"""

from __future__ import annotations

from typing import Any

from search.api.serializers import FILTER_SCHEMA

ERROR_COMPONENT = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. validation_error (API.md)."},
                "message": {"type": "string"},
                "detail": {"description": "Per field messages for a validation_error, or more facts."},
            },
        }
    },
}

# What any operation under /api/v1/ can answer, whatever it does.
ANY_OPERATION = {
    "401": "No API key, or one that is not valid (`not_authenticated`).",
    "403": "The key lacks the scope, or names another tenant (`permission_denied`, `tenant_mismatch`).",
    "404": "Not found, or another tenant's (`not_found`).",
    "429": "Over the key's rate limit (`rate_limited`; `Retry-After` says when to try again).",
    "503": "A service it needs is unavailable; nothing was changed (`service_unavailable`, `Retry-After`).",
}
WITH_INPUT = {"400": "The request is not valid: `validation_error` with each field's messages, or `parse_error`."}
WITH_BODY = {
    "411": "A chunked body without a length (`length_required`).",
    "413": "The body is larger than the operation takes (`request_too_large`, `file_too_large`).",
    "415": "A body of a type the operation does not take (`unsupported_media_type`).",
}
# Operations whose body drf-spectacular cannot tell is required (it is
# described by hand, not by a serializer with required fields).
BODY_REQUIRED = {"v1_products_bulk_create"}
# Answers of particular operations, by operationId.
SPECIFIC = {
    "v1_products_create": {"409": "A product with this sku exists (`conflict`)."},
    "v1_media_create": {
        "422": "The file is empty, corrupt, or too large in pixels or length (`corrupt_file`, `image_too_large`, "
        "`video_too_long`).",
    },
    "v1_media_uploads_create": {"501": "No S3 bucket is configured (`s3_not_configured`)."},
    "v1_media_reprocess_create": {"409": "It is processing now (`conflict`)."},
    "v1_search_image_create": {"422": "The photo is empty, corrupt or too large in pixels (`corrupt_file`, ...)."},
    "v1_search_similar_retrieve": {"409": "The item has no vectors yet (`conflict`)."},
    "v1_search_recommend_create": {"409": "An example has no vectors yet (`conflict`)."},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }


def _json_filter(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """`filter` is an object sent as JSON text: a query parameter of JSON
    content, a multipart field of JSON content (API.md, Search v2)."""
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "filter" and parameter.get("in") == "query":
            parameter.pop("schema", None)
            parameter["content"] = {"application/json": {"schema": FILTER_SCHEMA}}
    multipart = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    body = multipart.get("schema", {}) if multipart else {}
    body = schemas.get(body.get("$ref", "").rpartition("/")[2], body)
    if multipart and "filter" in body.get("properties", {}):
        multipart.setdefault("encoding", {})["filter"] = {"contentType": "application/json"}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            answers = dict(ANY_OPERATION)
            if operation.get("parameters") or operation.get("requestBody"):
                answers.update(WITH_INPUT)
            if operation.get("requestBody"):
                answers.update(WITH_BODY)
            answers.update(SPECIFIC.get(operation.get("operationId", ""), {}))
            responses = operation.setdefault("responses", {})
            for status, description in answers.items():
                responses.setdefault(status, _error(description))
            _json_filter(operation, result["components"]["schemas"])
            if operation.get("operationId") in BODY_REQUIRED:
                operation["requestBody"]["required"] = True
    for name, schema in result["components"]["schemas"].items():
        # Split request components (COMPONENT_SPLIT_REQUEST): their serializers refuse unknown fields.
        if name.endswith("Request") and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
            for field in schema.get("properties", {}).values():
                _not_only_white_space(field)
    return result


def _not_only_white_space(field: dict[str, Any]) -> None:
    """DRF's text fields trim white space before they check it is not blank:
    text that must not be blank must hold something besides white space."""
    if field.get("type") == "string" and field.get("minLength", 0) >= 1 and "pattern" not in field:
        if "format" not in field and "enum" not in field:
            field["pattern"] = r"\S"
