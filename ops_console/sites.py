"""The admin site, with the operators' dashboard as one of its pages.

Loaded by INSTALLED_APPS (`OpsAdminConfig`) before the apps are ready: no
model imports at module level."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.urls import path


class OpsAdminSite(AdminSite):
    site_header = "Stock Mind operations"
    site_title = "Stock Mind"
    index_title = "Operations console"
    index_template = "admin/ops_index.html"

    def get_urls(self):
        return [path("ops/", self.admin_view(self.dashboard_view), name="ops-dashboard"), *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        from catalog.models import Tenant
        from media_pipeline.heartbeat import ALIVE_FOR_S
        from ops_console.chart import throughput_chart
        from ops_console.dashboard import build_dashboard

        slug = request.GET.get("tenant") or None
        tenant = Tenant.objects.filter(slug=slug).first() if slug else None
        if slug and tenant is None:
            raise Http404(f"No tenant '{slug}'.")
        dashboard = build_dashboard(tenant)
        context = {
            **self.each_context(request),
            "title": f"Pipeline dashboard — {tenant.slug}" if tenant else "Pipeline dashboard",
            "dashboard": dashboard,
            "chart": throughput_chart(dashboard.hours),
            "alive_for": ALIVE_FOR_S,
            "all_tenants": Tenant.objects.order_by("slug").values_list("slug", flat=True),
        }
        return TemplateResponse(request, "admin/ops_dashboard.html", context)


class OpsAdminConfig(AdminConfig):
    default_site = "ops_console.sites.OpsAdminSite"
