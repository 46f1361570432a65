"""Hostile request bodies and parameters on every endpoint that takes them:
a clear 4xx in the API's error format, never a 500, nothing written."""

from __future__ import annotations

import json

import pytest

from catalog.models import Media, Product
from media_pipeline.models import RejectedS3Event
from tests.conftest import error_code
from tests.factories import MediaFactory, ProductFactory
from tests.media_files import jpeg_bytes

pytestmark = pytest.mark.django_db

# (method, path) of every endpoint that reads a JSON body.
JSON_ENDPOINTS = [
    ("post", "/api/v1/products/"),
    ("patch", "/api/v1/products/SHOE-1/"),
    ("post", "/api/v1/search/text"),
    ("post", "/api/v1/search/recommend"),
    ("post", "/api/v1/search/feedback"),
    ("post", "/api/v1/media/uploads/"),
]

RAW_BODIES = {
    "truncated JSON": b'{"title": "x",',
    "not JSON": b"title=x&sku=y",
    "a list": b"[1, 2, 3]",
    "a string": b'"hello"',
    "null": b"null",
    "a number": b"42",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "nesting just within the parser's depth": b'{"a":' * 960 + b"1" + b"}" * 960,
    "invalid UTF-8": b'{"title": "\xff\xfe"}',
    "NaN": b'{"title": NaN, "query": NaN, "k": NaN, "min_score": NaN}',
    "Infinity": b'{"title": Infinity, "query": "x", "k": Infinity, "min_score": -Infinity}',
    "NUL in a JSON value": b'{"sku": "NEW-1", "title": "x", "query": "x", "attributes": {"k": ["a\\u0000"]}}',
    "NUL in a JSON key": b'{"sku": "NEW-1", "title": "x", "query": "x", "attributes": {"k\\u0000": 1}}',
    "a lone surrogate": b'{"sku": "NEW-1", "title": "\\ud800", "query": "\\udfff", "product": "\\ud800"}',
    "a huge number": b'{"title": "x", "query": "x", "k": 1e400, "sku": 1' + b"0" * 5000 + b"}",
}


@pytest.fixture
def shoe(tenant):
    return ProductFactory(tenant=tenant, sku="SHOE-1", title="shoe")


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", list(RAW_BODIES), ids=list(RAW_BODIES))
def test_malformed_json_bodies_are_400(api, clip, shoe, s3_signing, method, path, body):
    response = api.generic(method.upper(), path, RAW_BODIES[body], content_type="application/json")
    assert response.status_code == 400, response.content
    assert error_code(response) in ("parse_error", "validation_error")
    assert_nothing_written(shoe)


# (method, path, body, the field the error must name)
WRONG_FIELDS = [
    ("post", "/api/v1/products/", {"sku": "NEW-1", "title": "x", "colour": "red"}, "colour"),
    ("post", "/api/v1/products/", {"sku": ["NEW-1"], "title": "x"}, "sku"),
    ("post", "/api/v1/products/", {"sku": None, "title": "x"}, "sku"),
    ("post", "/api/v1/products/", {"sku": "NEW-1", "title": {"en": "x"}}, "title"),
    ("post", "/api/v1/products/", {"sku": "NEW-1", "title": "x" * 100_000}, "title"),
    ("post", "/api/v1/products/", {"sku": "S" * 65, "title": "x"}, "sku"),
    ("post", "/api/v1/products/", {"sku": "../../etc", "title": "x"}, "sku"),
    ("post", "/api/v1/products/", {"sku": "NEW-1", "title": "nul\u0000byte"}, "title"),
    ("post", "/api/v1/products/", {"sku": "NEW-1", "title": "x", "attributes": "red"}, "attributes"),
    ("patch", "/api/v1/products/SHOE-1/", {"title": ["a", "b"]}, "title"),
    ("patch", "/api/v1/products/SHOE-1/", {"sku": "OTHER"}, "sku"),
    ("patch", "/api/v1/products/SHOE-1/", {"media_count": 5, "owner": "x"}, "owner"),
    ("post", "/api/v1/search/text", {"query": "x", "k": 10**30}, "k"),
    ("post", "/api/v1/search/text", {"query": "x", "k": "9" * 5000}, "k"),
    ("post", "/api/v1/search/text", {"query": "x", "k": -1}, "k"),
    ("post", "/api/v1/search/text", {"query": "x", "k": 2.5}, "k"),
    ("post", "/api/v1/search/text", {"query": "x", "k": True}, "k"),
    ("post", "/api/v1/search/text", {"query": "x", "min_score": "high"}, "min_score"),
    ("post", "/api/v1/search/text", {"query": ["x"]}, "query"),
    ("post", "/api/v1/search/text", {"query": "x" * 1001}, "query"),
    ("post", "/api/v1/search/text", {"query": "nul\u0000"}, "query"),
    ("post", "/api/v1/search/text", {"query": "x", "category": "a\u0000"}, "category"),
    ("post", "/api/v1/search/text", {"query": "x", "tenant": "globex"}, "tenant"),
    ("post", "/api/v1/media/uploads/", {"product": "SHOE-1", "filename": "a.jpg"}, "content_type"),
    ("post", "/api/v1/media/uploads/", {"product": 5, "filename": "a.jpg", "content_type": "image/jpeg"}, "product"),
]


@pytest.mark.parametrize(("method", "path", "payload", "field"), WRONG_FIELDS)
def test_wrong_fields_and_types_are_400_naming_the_field(api, clip, shoe, s3_signing, method, path, payload, field):
    response = getattr(api, method)(path, payload, format="json")
    assert response.status_code == 400, response.content
    # Text PostgreSQL cannot store is refused by the parser, the rest by the fields.
    assert error_code(response) in ("validation_error", "parse_error")
    assert field in json.dumps(response.json()["error"]), response.json()
    assert_nothing_written(shoe)


@pytest.mark.parametrize(
    "params",
    [
        {"k": "1" * 400},
        {"k": "10000000000000000000000"},
        {"min_score": "nan"},
        {"min_score": "inf"},
        {"category": "a\x00b"},
        {"unknown": "1"},
    ],
)
def test_bad_similar_search_options_are_400(api, tenant, clip, params):
    media = MediaFactory(tenant=tenant, status=Media.Status.READY)
    response = api.get(f"/api/v1/search/similar/{media.pk}", params)
    assert response.status_code == 400, response.content
    assert error_code(response) == "validation_error"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/products/", {"category": "a\x00b"}),
        ("/api/v1/products/", {"q": "\x00"}),
        ("/api/v1/products/", {"page": "99999999999999999999999"}),
        ("/api/v1/media/", {"product": "\x00"}),
        ("/api/v1/media/", {"status": "bogus"}),
        ("/api/v1/media/", {"kind": "../../"}),
        ("/api/v1/media/", {"page": "-1"}),
    ],
)
def test_bad_query_parameters_are_4xx(api, shoe, path, params):
    response = api.get(path, params)
    assert 400 <= response.status_code < 500, response.content
    error_code(response)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/products/..%2F..%2Fetc%2Fpasswd/",
        "/api/v1/products/%00/",
        "/api/v1/products/" + "A" * 5000 + "/",
        "/api/v1/media/99999999999999999999999999/",
        "/api/v1/media/-1/",
        "/api/v1/search/similar/99999999999999999999999999",
    ],
)
def test_odd_ids_in_paths_are_404(api, shoe, path):
    response = api.get(path)
    assert response.status_code == 404, response.content
    assert error_code(response) == "not_found"


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.jpg",
        "..\\..\\..\\windows\\win.ini.jpg",
        "/absolute/path.jpg",
        "clients/globex/products/THEIRS/media/image/x.jpg",
        "nul\x00byte.jpg",
        "\u202egnp.jpg",
        "a" * 500 + ".jpg",
        "a" * 2000 + ".jpg",
        "..",
        ".jpg",
    ],
)
def test_file_names_never_leave_the_tenants_folder(api, tenant, media_storage, shoe, filename):
    response = api.generic("POST", "/api/v1/media/", *multipart(filename, jpeg_bytes(64, 48, seed=len(filename))))
    assert response.status_code in (202, 400), response.content
    if response.status_code == 400:  # a name the multipart parser cannot take
        assert error_code(response) in ("validation_error", "parse_error")
        return
    media = Media.objects.get()
    assert media.storage_key.startswith("clients/acme/products/SHOE-1/media/image/")
    assert "/" not in media.storage_key.removeprefix("clients/acme/products/SHOE-1/media/image/")
    assert ".." not in media.storage_key and "\x00" not in media.storage_key
    stored = [path for path in media_storage.rglob("*") if path.is_file()]
    assert [str(path.relative_to(media_storage)) for path in stored] == [media.storage_key]


@pytest.mark.parametrize(
    "filename",
    ["../../globex/products/THEIRS/media/image/a.jpg", "..\\..\\x.jpg", "/etc/passwd.jpg", "nul\x00.jpg"],
)
def test_presigned_keys_stay_in_the_tenants_folder(api, tenant, shoe, s3_signing, filename):
    payload = {"product": "SHOE-1", "filename": filename, "content_type": "image/jpeg"}
    response = api.post("/api/v1/media/uploads/", payload, format="json")
    if response.status_code == 400:
        assert error_code(response) in ("validation_error", "parse_error")
        return
    assert response.status_code == 201, response.content
    key = response.json()["key"]
    assert key.startswith("clients/acme/products/SHOE-1/media/image/")
    assert "/" not in key.removeprefix("clients/acme/products/SHOE-1/media/image/") and ".." not in key


@pytest.mark.parametrize(
    "key",
    [
        "clients/acme/products/../../globex/products/X/media/image/a.jpg",
        "clients/acme/products/SHOE-1/media/image/../../../../globex/products/X/media/image/a.jpg",
        "clients/acme/products/SHOE-1/media/image/..%2F..%2Fa.jpg",
        "clients/../globex/products/X/media/image/a.jpg",
        "/clients/acme/products/SHOE-1/media/image/a.jpg",
        "clients/acme/products/SHOE-1/media/image/a.jpg%00.exe",
        "clients/acme/products/SHOE-1/media/image/a%00.jpg",
        "clients/acme/products/SHOE-1/media/image/a%0D%0A.jpg",
        "clients/acme/products/SHOE-1/media/image/a.exe",
    ],
)
def test_s3_keys_outside_the_layout_are_rejected_with_a_reason(tenant, other_tenant, key):
    from media_pipeline.bridge import process_message

    body = {"Records": [s3_record(key)]}
    process_message({"MessageId": "m-1", "ReceiptHandle": "r", "Body": json.dumps(body)})
    assert not Media.objects.exists()
    rejected = RejectedS3Event.objects.get()
    assert rejected.reason


def s3_record(key: str) -> dict:
    from urllib.parse import quote_plus

    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "stockmind-media"},
            "object": {"key": quote_plus(key, safe="/%"), "size": 10, "eTag": "abc", "sequencer": "01"},
        },
    }


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart body with the file name exactly as a client wrote it (the
    test client would refuse to send some of these)."""
    boundary = "----stockmind-test"
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="product"\r\n\r\nSHOE-1\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def assert_nothing_written(shoe) -> None:
    assert list(Product.objects.values_list("sku", "title")) == [(shoe.sku, shoe.title)]
    assert not Media.objects.exists()


# What the API schema says a field is, held to: DRF alone would read 0 as "0",
# "10" as 10, ignore a read-only field and take an empty form field as not given.
@pytest.mark.parametrize(
    ("method", "path", "body", "field", "message"),
    [
        ("post", "/api/v1/products/", {"sku": "A-1", "title": "x", "category": 0}, "category", "string"),
        ("post", "/api/v1/products/", {"sku": "A-1", "title": 7}, "title", "string"),
        ("post", "/api/v1/products/", {"sku": "A-1", "title": "x", "media_count": 3}, "media_count", "Read only"),
        ("patch", "/api/v1/products/SHOE-1/", {"sku": "SHOE-1"}, "sku", "cannot be changed"),
        ("post", "/api/v1/products/", {"sku": "A-1", "title": "x", "attributes": [1]}, "attributes", "object"),
        ("post", "/api/v1/search/text", {"query": "shoe", "k": "10"}, "k", "whole number"),
        ("post", "/api/v1/search/text", {"query": "shoe", "k": True}, "k", "whole number"),
        ("post", "/api/v1/search/text", {"query": "shoe", "min_score": "0.5"}, "min_score", "number"),
        ("post", "/api/v1/search/recommend", {"positive": 5}, "positive", "list"),
    ],
)
def test_a_json_value_of_the_wrong_type_is_refused(api, clip, shoe, method, path, body, field, message):
    response = getattr(api, method)(path, body, format="json")
    assert response.status_code == 400 and error_code(response) == "validation_error"
    assert message in str(response.json()["error"]["detail"][field])
    assert not Product.objects.filter(sku="A-1").exists()


def test_an_empty_form_field_is_refused_not_taken_as_left_out(api, clip):
    from django.core.files.uploadedfile import SimpleUploadedFile

    for field in ("box", "k", "min_score", "cutoff"):
        upload = SimpleUploadedFile("q.jpg", jpeg_bytes(64, 48))
        response = api.post("/api/v1/search/image", {"file": upload, field: ""}, format="multipart")
        assert response.status_code == 400 and field in response.json()["error"]["detail"], field


@pytest.mark.parametrize("page_size", ["abc", "0", "201", "-1", "null", "²"])
def test_a_page_size_that_is_not_one_is_refused(api, page_size):
    response = api.get("/api/v1/products/", {"page_size": page_size})
    assert response.status_code == 400 and "page_size" in response.json()["error"]["detail"]
