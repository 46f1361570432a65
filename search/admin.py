from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from search.models import Embedding, ThresholdChange, Thresholds
from search.thresholds import preview, save_thresholds


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "media", "frame", "product", "model_name", "created_at"]
    list_filter = ["tenant", "model_name"]
    search_fields = ["product__sku", "model_name"]
    list_select_related = ["tenant", "media", "frame", "product"]
    show_full_result_count = False
    exclude = ["vector"]
    readonly_fields = ["tenant", "media", "frame", "product", "model_name", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ThresholdChangeInline(admin.TabularInline):
    model = ThresholdChange
    fields = ["changed_at", "changed_by", "field", "old_value", "new_value"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "change history"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Thresholds)
class ThresholdsAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "min_similarity",
        "near_duplicate_similarity",
        "auto_assign_confidence",
        "stuck_after_minutes",
        "hnsw_ef_search",
        "updated_at",
        "updated_by",
    ]
    list_select_related = ["tenant", "updated_by"]
    search_fields = ["tenant__slug"]
    readonly_fields = ["updated_at", "updated_by"]

    inlines = [ThresholdChangeInline]
    change_form_template = "admin/search/thresholds/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        # Thresholds belong to their tenant for good.
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    def get_urls(self):
        preview_view = self.admin_site.admin_view(require_POST(self.preview_view))
        return [path("<int:pk>/preview/", preview_view, name="search_thresholds_preview"), *super().get_urls()]

    def save_model(self, request, obj: Thresholds, form, change: bool) -> None:
        saved = save_thresholds(obj, request.user)
        if saved.assigned:
            self.message_user(
                request, f"{saved.assigned} media of the review list reached the new auto-assign confidence: assigned."
            )

    def preview_view(self, request: HttpRequest, pk: int):
        """What the submitted values would do, side by side with the saved
        ones; saved only when the operator confirms them there."""
        current = get_object_or_404(Thresholds.objects.select_related("tenant"), pk=pk)
        if not self.has_change_permission(request, current):
            raise PermissionDenied
        form = self.get_form(request, current, change=True)(request.POST, instance=Thresholds.objects.get(pk=pk))
        if "_confirm" in request.POST and form.is_valid():
            thresholds = form.save(commit=False)
            self.save_model(request, thresholds, form, change=True)
            self.log_change(request, thresholds, self.construct_change_message(request, form, []))
            self.message_user(request, f"Saved the thresholds of {current.tenant.slug}.")
            return HttpResponseRedirect(reverse("admin:search_thresholds_change", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview thresholds of {current.tenant.slug}",
            "opts": self.model._meta,
            "original": current,
            "form": form,
            "effects": preview(current, form.instance) if form.is_valid() else None,
        }
        return TemplateResponse(request, "admin/search/thresholds/preview.html", context)
