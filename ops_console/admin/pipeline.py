"""The operators' lists: what is stuck, what failed and why, and the pairs
of duplicates side by side."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from catalog import pictures, transitions
from catalog.models import Media
from ops_console.dashboard import failure_reasons
from ops_console.models import DuplicateMedia, FailedMedia, StuckMedia


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
    list_display = [
        pictures.picture_column,
        "id",
        "tenant",
        "product",
        "kind",
        "stuck_for",
        "attempts",
        "processing_started_at",
    ]
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
    list_display = [pictures.picture_column, "id", "tenant", "product", "kind", "error", "attempts", "processed_at"]
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


@admin.register(DuplicateMedia)
class DuplicateMediaAdmin(ReadOnlyMediaAdmin):
    """Each item that duplicates an earlier one, beside it, with the tier."""

    list_display = ["copy", "original", "duplicate_kind", "alike", "tenant", "processed_at"]
    list_display_links = None
    list_filter = ["duplicate_kind", "tenant", "kind"]
    list_select_related = ["tenant", "duplicate_of"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Media]:
        return Media.objects.filter(duplicate_of__isnull=False)

    def get_ordering(self, request: HttpRequest):
        return ["-pk"]  # the newest copies first

    @staticmethod
    def _side(media: Media) -> SafeString:
        url = reverse("admin:catalog_media_change", args=[media.pk])
        return format_html(
            '<a href="{}">{}</a><br>{} #{}',
            url,
            pictures.media_picture(media, pictures.GALLERY_SIDE),
            media.kind,
            media.pk,
        )

    @admin.display(description="copy")
    def copy(self, media: Media) -> SafeString:
        return self._side(media)

    @admin.display(description="original")
    def original(self, media: Media) -> SafeString:
        return self._side(media.duplicate_of) if media.duplicate_of else format_html("{}", "—")

    @admin.display(description="alike", ordering="duplicate_similarity")
    def alike(self, media: Media) -> str:
        return "—" if media.duplicate_similarity is None else f"{media.duplicate_similarity:.3f}"
