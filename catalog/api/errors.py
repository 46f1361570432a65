"""The one error body of API.md for every 4xx/5xx under /api/:
{"error": {"code": "<snake_case>", "message": "<human>", "detail": {...}}}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from catalog.errors import DomainError
from config.transient import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

# Seconds a client is told to wait when a backing service is down.
RETRY_AFTER_S = "5"

DOMAIN_STATUS = {
    "conflict": status.HTTP_409_CONFLICT,
    "file_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "unsupported_media_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "image_too_large": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "corrupt_file": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "video_too_long": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "s3_not_configured": status.HTTP_501_NOT_IMPLEMENTED,
}

# DRF's own exception classes, named as API.md names them.
DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail:
        error["detail"] = detail
    return {"error": error}


class ApiError(exceptions.APIException):
    """An APIException with an explicit code, for views that refuse a request."""

    def __init__(self, status_code: int, code: str, message: str, detail: Any = None):
        super().__init__(message, code)
        self.status_code = status_code
        self.error_code = code
        self.error_detail = detail


def _code_for(exc: exceptions.APIException) -> str:
    # A PermissionDenied raised with a specific code (tenant_mismatch, ...) keeps it.
    codes = exc.get_codes()
    if isinstance(codes, str) and codes not in {"error", "invalid", exc.default_code}:
        return codes
    for cls in type(exc).__mro__:
        if cls in DRF_CODES:
            return DRF_CODES[cls]
    return "error"


def _message_for(exc: exceptions.APIException, code: str) -> tuple[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = ", ".join(str(k) for k in detail)
            return f"Invalid input: {fields}.", detail
        return "Invalid input.", {"non_field_errors": detail}
    return str(exc.detail), None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        http_status = DOMAIN_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST)
        return Response(error_body(exc.code, exc.message, exc.detail), status=http_status)
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, str(exc.detail), exc.error_detail), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, TRANSIENT_ERRORS):
        # The database, broker or storage is unreachable: nothing was done, and
        # the same request will work once it is back.
        logger.error("service unavailable: %s: %s", type(exc).__name__, exc)
        message = "A service this request needs is unavailable; nothing was changed. Try again shortly."
        body = error_body("service_unavailable", message)
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_S})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a 500: Django's handler500 below writes the body.
    assert isinstance(exc, exceptions.APIException)
    code = _code_for(exc)
    message, detail = _message_for(exc, code)
    response.data = error_body(code, message, detail)
    return response


# --- Django's own error views: JSON under /api/, the usual pages elsewhere ------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _json_or_default(
    request: HttpRequest, status_code: int, code: str, message: str, default: Callable[[], HttpResponse]
) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(code, message), status=status_code)
    return default()


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.views import defaults

    return _json_or_default(
        request, 400, "bad_request", "The request was malformed.", lambda: defaults.bad_request(request, exception)
    )


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.views import defaults

    return _json_or_default(
        request,
        403,
        "permission_denied",
        "You do not have permission to perform this action.",
        lambda: defaults.permission_denied(request, exception),
    )


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    from django.views import defaults

    return _json_or_default(
        request, 404, "not_found", "Not found.", lambda: defaults.page_not_found(request, exception)
    )


def handler500(request: HttpRequest) -> HttpResponse:
    from django.views import defaults

    return _json_or_default(
        request,
        500,
        "server_error",
        "An unexpected error occurred; it has been logged.",
        lambda: defaults.server_error(request),
    )
