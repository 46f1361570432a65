"""Request body limits, enforced from the headers before a byte of the body is
read: an oversized or unsized body is refused at once, whatever it holds.

A view declares the limit of a handler that takes more than the default
(`@limit_body(UPLOAD)` on the method): the limit travels with the view, so a
route renamed or mounted twice keeps it (tests/test_body_limits.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from catalog.api.errors import error_body

# Multipart framing around an uploaded file: boundaries, part headers, fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The attribute of a view's handler that holds its BodyLimit.
LIMIT_ATTRIBUTE = "body_limit"

Handler = TypeVar("Handler", bound=Callable[..., Any])


@dataclass(frozen=True)
class BodyLimit:
    """The largest body a handler takes, read from settings at each request."""

    max_bytes: Callable[[], int]
    code: str  # the error code of a refusal
    what: str  # what the body is, in the refusal's message

    def refusal(self, size: int) -> JsonResponse | None:
        limit = self.max_bytes()
        if size <= limit:
            return None
        message = f"{self.what} is {size} bytes, larger than the limit of {limit} bytes."
        return JsonResponse(error_body(self.code, message, {"size": size, "limit": limit}), status=413)


DEFAULT_LIMIT = BodyLimit(lambda: settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "request_too_large", "The request body")
UPLOAD = BodyLimit(lambda: settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES, "file_too_large", "The upload")
QUERY_IMAGE = BodyLimit(
    lambda: settings.MAX_SEARCH_IMAGE_BYTES + MULTIPART_OVERHEAD_BYTES, "file_too_large", "The query image"
)


def limit_body(limit: BodyLimit) -> Callable[[Handler], Handler]:
    """Declare the body limit of a view's handler (`post`, or a viewset's action)."""

    def declare(handler: Handler) -> Handler:
        setattr(handler, LIMIT_ATTRIBUTE, limit)
        return handler

    return declare


def limit_of(view_func: Callable[..., Any], method: str) -> BodyLimit:
    """The limit the view that `view_func` (DRF's as_view()) serves `method`
    with declares, or the default."""
    view_class = getattr(view_func, "cls", None)
    actions = getattr(view_func, "actions", None)  # a viewset's {"post": "create", ...}
    name = actions.get(method.lower()) if actions else method.lower()
    handler = getattr(view_class, name, None) if view_class is not None and name else None
    return getattr(handler, LIMIT_ATTRIBUTE, DEFAULT_LIMIT)


class RequestBodyLimitMiddleware:
    """On /api/: 413 for a declared Content-Length over the view's limit, 411
    for a chunked body that declares none (Django would read it as empty)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._applies(request):
            refused = self._unsized(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        # After the URL is resolved and before the view (or any middleware's
        # view hook, e.g. CSRF's) reads the body.
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not self._applies(request) or not declared.isdigit():
            return None
        return limit_of(view_func, request.method or "").refusal(int(declared))

    @staticmethod
    def _applies(request: HttpRequest) -> bool:
        return request.path.startswith("/api/") and request.method in BODY_METHODS

    @staticmethod
    def _unsized(request: HttpRequest) -> JsonResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared:
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                message = "Send the body with a Content-Length; chunked request bodies are not accepted."
                return JsonResponse(error_body("length_required", message), status=411)
            return None
        if not declared.isdigit():
            return JsonResponse(error_body("parse_error", "The Content-Length header is not a number."), status=400)
        return None
