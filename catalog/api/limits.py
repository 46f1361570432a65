"""Request body limits, enforced from the headers before a byte of the body is
read: an oversized or unsized body is refused at once, whatever it holds."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from catalog.api.errors import error_body

# Multipart framing around an uploaded file: boundaries, part headers, fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def body_limit(request: HttpRequest) -> tuple[int, str, str]:
    """The largest body `request`'s endpoint takes: (bytes, error code, what)."""
    if request.path == "/api/v1/media/":
        return settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES, "file_too_large", "The upload"
    if request.path == "/api/v1/search/image":
        return settings.MAX_SEARCH_IMAGE_BYTES + MULTIPART_OVERHEAD_BYTES, "file_too_large", "The query image"
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "request_too_large", "The request body"


class RequestBodyLimitMiddleware:
    """On /api/: 413 for a declared Content-Length over the endpoint's limit,
    411 for a chunked body that declares none (Django would read it as empty)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path.startswith("/api/") and request.method in BODY_METHODS:
            refused = self.refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def refusal(request: HttpRequest) -> JsonResponse | None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared:
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                message = "Send the body with a Content-Length; chunked request bodies are not accepted."
                return JsonResponse(error_body("length_required", message), status=411)
            return None
        try:
            size = int(declared)
        except ValueError:
            return JsonResponse(error_body("parse_error", "The Content-Length header is not a number."), status=400)
        limit, code, what = body_limit(request)
        if size > limit:
            message = f"{what} is {size} bytes, larger than the limit of {limit} bytes."
            return JsonResponse(error_body(code, message, {"size": size, "limit": limit}), status=413)
        return None
