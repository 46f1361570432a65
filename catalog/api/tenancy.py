"""The one mechanism that scopes API views to the tenant of the API key.

Every view under /api/v1/ derives from `TenantAPIView` or `TenantViewSet`
(tests/test_tenant_isolation.py fails for one that does not): the base classes
demand a valid key (settings.REST_FRAMEWORK permission default), and a view's
queryset always starts from `model.objects.filter(tenant=...)`, so an object
of another tenant is a 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from catalog.models import ApiKey, Tenant


class TenantScopedMixin:
    model: type[Model]
    request: Any

    @property
    def api_key(self) -> ApiKey:
        return self.request.auth

    @property
    def tenant(self) -> Tenant:
        return self.api_key.tenant

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            # drf-spectacular reading the view for the schema: no request, no tenant, no rows.
            return self.model._default_manager.none()
        return self.scope_queryset(self.model._default_manager.filter(tenant=self.tenant))

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        """Override to add joins, annotations or filters; the tenant filter stays."""
        return queryset


class TenantAPIView(TenantScopedMixin, APIView):
    pass


class TenantViewSet(TenantScopedMixin, GenericViewSet):
    pass
