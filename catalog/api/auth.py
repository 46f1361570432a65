"""Bearer API keys. The key names the tenant; every API view then works inside
that tenant (catalog/api/tenancy.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from catalog.models import ApiKey

TENANT_HEADER = "HTTP_X_TENANT_SLUG"


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].decode(errors="replace").lower() != self.keyword.lower() or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc

        key = ApiKey.find(plaintext)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if not key.tenant.is_active:
            raise exceptions.PermissionDenied("This tenant is inactive.", code="tenant_inactive")
        claimed = request.META.get(TENANT_HEADER)
        if claimed is not None and claimed != key.tenant.slug:
            raise exceptions.PermissionDenied(
                "X-Tenant-Slug does not match the tenant of this API key.", code="tenant_mismatch"
            )
        key.touch()
        # No Django user: the API key itself is the principal (request.auth).
        return (None, key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class HasApiKeyScope(BasePermission):
    """Reads need a `read` key, everything else a `write` key. A view may name
    the scope it needs with `required_scope` (a search is a POST that only reads)."""

    message = "This API key does not have the scope this request needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Authentication required: 'Authorization: Bearer <api key>'.")
        scope = getattr(view, "required_scope", None)
        if scope is None:
            scope = ApiKey.Scope.READ if request.method in SAFE_METHODS else ApiKey.Scope.WRITE
        return key.allows(scope)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "catalog.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "sm_<prefix>_<secret>"}
