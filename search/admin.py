from django.contrib import admin

from search.models import Embedding, ThresholdChange, Thresholds
from search.thresholds import save_thresholds


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

    def save_model(self, request, obj: Thresholds, form, change: bool) -> None:
        save_thresholds(obj, request.user)
