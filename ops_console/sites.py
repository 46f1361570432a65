"""The admin site, with the operators' dashboard as one of its pages.

Loaded by INSTALLED_APPS (`OpsAdminConfig`) before the apps are ready: no
model imports at module level."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path

# What a staff user needs to read the search analytics: the right to view
# the search log (its queries are the shoppers' words).
ANALYTICS_PERMISSION = "search.view_searchlog"
# What a staff user needs to search the playground and see the catalog's
# pictures: the right to view media in the admin (every tenant's).
PICTURES_PERMISSION = "catalog.view_media"


def _may_see_pictures(request: HttpRequest) -> None:
    if not request.user.has_perm(PICTURES_PERMISSION):
        raise PermissionDenied(f"Searching the catalog and seeing its pictures needs {PICTURES_PERMISSION}.")


class OpsAdminSite(AdminSite):
    site_header = "Stock Mind operations"
    site_title = "Stock Mind"
    index_title = "Operations console"
    index_template = "admin/ops_index.html"

    def get_urls(self):
        return [
            path("ops/", self.admin_view(self.dashboard_view), name="ops-dashboard"),
            path("ops/search-analytics/", self.admin_view(self.search_analytics_view), name="ops-search-analytics"),
            path("ops/playground/", self.admin_view(self.playground_view), name="ops-playground"),
            path("ops/picture/<int:media_id>/", self.admin_view(self.picture_view), name="ops-picture"),
            *super().get_urls(),
        ]

    def playground_view(self, request: HttpRequest) -> TemplateResponse:
        from catalog.errors import DomainError
        from ops_console.playground import PlaygroundForm, run

        _may_see_pictures(request)
        outcome = None
        if request.method == "POST":
            form = PlaygroundForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    outcome = run(form.cleaned_data)
                except DomainError as exc:  # a photo it cannot search
                    form.add_error("photo", exc.message)
        else:
            form = PlaygroundForm(initial={"tenant": request.GET.get("tenant")})
        context = {**self.each_context(request), "title": "Search playground", "form": form, "outcome": outcome}
        return TemplateResponse(request, "admin/search_playground.html", context)

    def picture_view(self, request: HttpRequest, media_id: int) -> HttpResponseBase:
        """A result's picture for the console: the storage's own URL where it
        has one (S3, signed), else the file itself."""
        from django.core.files.storage import default_storage

        from ops_console.playground import picture_key

        _may_see_pictures(request)
        key = picture_key(media_id, request.GET.get("frame"))
        if key is None or not default_storage.exists(key):
            raise Http404("No picture.")
        url = default_storage.url(key)
        if url.startswith(("http://", "https://")):
            return HttpResponseRedirect(url)
        return FileResponse(default_storage.open(key, "rb"))

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        from catalog.models import Tenant
        from media_pipeline.heartbeat import ALIVE_FOR_S
        from ops_console.chart import throughput_chart
        from ops_console.dashboard import build_dashboard

        tenant = _tenant_named(request.GET.get("tenant"))
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

    def search_analytics_view(self, request: HttpRequest) -> TemplateResponse:
        from catalog.models import Tenant
        from ops_console.chart import analytics_charts
        from ops_console.search_analytics import KINDS, WINDOWS, build_search_analytics

        if not request.user.has_perm(ANALYTICS_PERMISSION):
            raise PermissionDenied(f"The search analytics need {ANALYTICS_PERMISSION}.")
        tenant = _tenant_named(request.GET.get("tenant"))
        try:
            days = int(request.GET.get("days") or WINDOWS[0])
        except ValueError:
            days = 0
        if days not in WINDOWS:
            raise BadRequest(f"days must be one of {', '.join(map(str, sorted(WINDOWS)))}.")
        score_kind = request.GET.get("kind") or ""
        if score_kind and score_kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}.")
        analytics = build_search_analytics(tenant, days=days, score_kind=score_kind)
        context = {
            **self.each_context(request),
            "title": f"Search analytics — {tenant.slug}" if tenant else "Search analytics",
            "analytics": analytics,
            **analytics_charts(analytics),
            "windows": sorted(WINDOWS),
            "kinds": KINDS,
            "all_tenants": Tenant.objects.order_by("slug").values_list("slug", flat=True),
        }
        return TemplateResponse(request, "admin/search_analytics.html", context)


def _tenant_named(slug: str | None):
    """The tenant a console page's `?tenant=` names; None for all tenants."""
    from catalog.models import Tenant

    if not slug:
        return None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise Http404(f"No tenant '{slug}'.")
    return tenant


class OpsAdminConfig(AdminConfig):
    default_site = "ops_console.sites.OpsAdminSite"
