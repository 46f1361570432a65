"""The operators' lists: what is stuck, and what failed and why."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from catalog import transitions
from catalog.models import Media
from ops_console.dashboard import failure_reasons
from ops_console.models import FailedMedia, StuckMedia


class ReadOnlyMediaAdmin(admin.ModelAdmin):
    list_select_related = ["tenant", "product"]
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(StuckMedia)
class StuckMediaAdmin(ReadOnlyMediaAdmin):
    list_display = ["id", "tenant", "product", "kind", "stuck_for", "attempts", "processing_started_at"]
    list_filter = ["tenant", "kind"]
    actions = ["requeue", "mark_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Media]:
        return Media.objects.stuck(timezone.now()).select_related("tenant", "product")

    def get_ordering(self, request: HttpRequest):
        return ["processing_started_at", "pk"]  # oldest first

    @admin.display(description="stuck for")
    def stuck_for(self, media: Media) -> str:
        started = media.processing_started_at or timezone.now()
        minutes = int((timezone.now() - started).total_seconds() // 60)
        return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"

    @admin.action(description="Requeue selected stuck media")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Media]) -> None:
        ids = transitions.back_to_pending(Media.objects.processing().filter(pk__in=queryset.values("pk")))
        self.message_user(request, f"Requeued {len(ids)} stuck media.")

    @admin.action(description="Mark selected stuck media as failed")
    def mark_failed(self, request: HttpRequest, queryset: QuerySet[Media]) -> None:
        reason = f"Marked failed by {request.user.get_username()} after being stuck."
        ids = transitions.fail(Media.objects.processing().filter(pk__in=queryset.values("pk")), reason)
        self.message_user(request, f"Marked {len(ids)} stuck media as failed.")


class FailureReasonFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return [(reason, f"{reason or '(no reason)'} ({n})") for reason, n in failure_reasons()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(error__startswith=self.value())


@admin.register(FailedMedia)
class FailedMediaAdmin(ReadOnlyMediaAdmin):
    list_display = ["id", "tenant", "product", "kind", "error", "attempts", "processed_at"]
    list_filter = [FailureReasonFilter, "tenant", "kind"]
    search_fields = ["error", "original_filename", "product__sku"]
    actions = ["reprocess"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Media]:
        return Media.objects.failed()

    def get_ordering(self, request: HttpRequest):
        return ["-processed_at", "-pk"]

    @admin.action(description="Reprocess selected failed media (select all to take every item of the reason)")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Media]) -> None:
        ids = transitions.back_to_pending(Media.objects.failed().filter(pk__in=queryset.values("pk")))
        self.message_user(request, f"Queued {len(ids)} failed media for processing again.")
