"""Each tenant's settings page: edit, preview what proposed values would do
with the tenant's data, then save; every change is recorded."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from catalog.models import TenantSettings, TenantSettingsChange
from search.tuning import preview, save_with_effects

HISTORY_COLUMNS = ("changed_at", "changed_by", "field", "old_value", "new_value")


class TenantSettingsChangeInline(admin.TabularInline):
    model = TenantSettingsChange
    fields = HISTORY_COLUMNS
    readonly_fields = HISTORY_COLUMNS
    extra = 0
    can_delete = False
    verbose_name_plural = "change history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TenantSettings)
class TenantSettingsAdmin(admin.ModelAdmin):
    list_display = ["tenant", *TenantSettings.EDITABLE, "updated_at", "updated_by"]
    list_select_related = ["tenant", "updated_by"]
    search_fields = ["tenant__slug"]
    fields = ["tenant", *TenantSettings.EDITABLE, "updated_at", "updated_by"]
    readonly_fields = ["tenant", "updated_at", "updated_by"]
    inlines = [TenantSettingsChangeInline]
    change_form_template = "admin/catalog/tenantsettings/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created with their tenant (catalog.tenants.create_tenant)

    def has_delete_permission(self, request: HttpRequest, obj: TenantSettings | None = None) -> bool:
        return False  # deleted with their tenant

    def get_urls(self):
        preview_view = self.admin_site.admin_view(require_POST(self.preview_view))
        return [path("<int:pk>/preview/", preview_view, name="catalog_tenantsettings_preview"), *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: TenantSettings, form: Any, change: bool) -> None:
        saved = save_with_effects(obj, request.user)
        if saved.assigned:
            self.message_user(
                request, f"{saved.assigned} media of the review list reached the new auto-assign confidence: assigned."
            )

    def preview_view(self, request: HttpRequest, pk: int) -> TemplateResponse | HttpResponseRedirect:
        """What the submitted values would do, side by side with the saved
        ones; saved only when the operator confirms them there."""
        current = get_object_or_404(TenantSettings.objects.select_related("tenant"), pk=pk)
        if not self.has_change_permission(request, current):
            raise PermissionDenied
        form_class = self.get_form(request, current, change=True)
        form = form_class(request.POST, instance=TenantSettings.objects.select_related("tenant").get(pk=pk))
        if "_confirm" in request.POST and form.is_valid():
            tenant_settings = form.save(commit=False)
            self.save_model(request, tenant_settings, form, change=True)
            self.log_change(request, tenant_settings, [{"changed": {"fields": form.changed_data}}])
            self.message_user(request, f"Saved the settings of {current.tenant.slug}.")
            return HttpResponseRedirect(reverse("admin:catalog_tenantsettings_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview the settings of {current.tenant.slug}",
            "opts": self.model._meta,
            "original": current,
            "form": form,
            "effects": preview(current, form.instance) if form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/catalog/tenantsettings/preview.html", context)
