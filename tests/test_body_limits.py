"""Request bodies are refused from their headers, before they are read: a
declared size over the endpoint's limit is 413, a chunked body with no size 411."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlparse

import pytest

from catalog.models import Media, Product
from tests.conftest import error_code

MB = 1024 * 1024
SMALL_BODY = b'{"sku": "A-1", "title": "x"}'


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "declared", "code"),
    [
        ("/api/v1/products/", 3 * MB, "request_too_large"),
        ("/api/v1/search/text", 3 * MB, "request_too_large"),
        ("/api/v1/media/uploads/", 3 * MB, "request_too_large"),
        ("/api/v1/search/image", 11 * MB, "file_too_large"),
        ("/api/v1/media/", 51 * MB, "file_too_large"),
    ],
)
def test_a_declared_size_over_the_limit_is_413_without_reading(api, path, declared, code):
    # The body holds a few bytes: reading the declared size would fail the test client.
    response = api.generic("POST", path, SMALL_BODY, content_type="application/json", CONTENT_LENGTH=str(declared))
    assert response.status_code == 413
    assert error_code(response) == code
    assert response.json()["error"]["detail"]["size"] == declared
    assert not Product.objects.exists() and not Media.objects.exists()


@pytest.mark.django_db
def test_a_body_within_the_limit_is_read(api):
    response = api.generic("POST", "/api/v1/products/", SMALL_BODY, content_type="application/json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_a_bad_content_length_is_400(api):
    response = api.generic("POST", "/api/v1/products/", SMALL_BODY, content_type="application/json", CONTENT_LENGTH="x")
    assert response.status_code == 400 and error_code(response) == "parse_error"


def raw_request(live_server, head: str, body: bytes, timeout: float = 10) -> tuple[bytes, dict]:
    """Sends `head` and `body` over a real socket, never more than `body`, and
    returns the server's status line and its JSON answer."""
    address = urlparse(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    headers, _, payload = answer.partition(b"\r\n\r\n")
    return headers.split(b"\r\n", 1)[0], json.loads(payload)


def test_the_server_answers_413_while_the_client_still_holds_a_gigabyte(live_server, transactional_db, api):
    head = (
        "POST /api/v1/media/ HTTP/1.1\nHost: localhost\nContent-Type: multipart/form-data; boundary=x\n"
        f"Content-Length: {1024 * MB}\n"
    )
    status, answer = raw_request(live_server, head, b"--x\r\n" + b"\0" * 1024)
    assert status.startswith(b"HTTP/1.1 413") and answer["error"]["code"] == "file_too_large"


def test_a_chunked_body_without_a_length_is_411(live_server, transactional_db):
    head = (
        "POST /api/v1/products/ HTTP/1.1\nHost: localhost\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
    )
    status, answer = raw_request(live_server, head, b"1c\r\n" + SMALL_BODY + b"\r\n0\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 411") and answer["error"]["code"] == "length_required"
    assert not Product.objects.exists()


@pytest.mark.django_db
@pytest.mark.urls("tests.urls_renamed")
@pytest.mark.parametrize(
    ("path", "declared", "code"),
    [
        ("/api/v2/files/", 51 * MB, "file_too_large"),  # the upload view under another name
        ("/api/v2/find-by-photo", 11 * MB, "file_too_large"),  # the query-photo view under another name
        ("/api/v2/files/", 40 * MB, None),  # within the upload limit there too: read and answered
        ("/api/v2/files/uploads/", 3 * MB, "request_too_large"),  # the same viewset's other action
    ],
)
def test_a_limit_follows_its_view_to_any_route(api, path, declared, code):
    response = api.generic("POST", path, SMALL_BODY, content_type="application/json", CONTENT_LENGTH=str(declared))
    if code is None:
        assert response.status_code != 413
        return
    assert response.status_code == 413 and error_code(response) == code
    assert response.json()["error"]["detail"]["size"] == declared
