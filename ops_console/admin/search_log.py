"""The search log and its feedback, read-only: what shoppers searched for,
what they found (the zero-result searches a filter away) and what they did;
and the log's days rolled up, which the search analytics read."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from search.models import SearchDay, SearchFeedback, SearchLog


class FoundNothing(admin.SimpleListFilter):
    title = "results"
    parameter_name = "found"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("none", "found nothing"), ("some", "found some")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "none":
            return queryset.filter(result_count=0)
        if self.value() == "some":
            return queryset.filter(result_count__gt=0)
        return queryset


class ReadOnly(admin.ModelAdmin):
    show_full_result_count = False  # millions of rows

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SearchLog)
class SearchLogAdmin(ReadOnly):
    list_display = ["created_at", "tenant", "kind", "mode", "query_text", "result_count", "best_score", "took_ms"]
    list_filter = ["tenant", "kind", "mode", FoundNothing]
    search_fields = ["query_text"]
    list_select_related = ["tenant"]
    readonly_fields = [f.name for f in SearchLog._meta.fields]


@admin.register(SearchFeedback)
class SearchFeedbackAdmin(ReadOnly):
    list_display = ["created_at", "tenant", "event", "search", "media", "product"]
    list_filter = ["tenant", "event"]
    list_select_related = ["tenant", "search", "media", "product"]
    readonly_fields = [f.name for f in SearchFeedback._meta.fields]


@admin.register(SearchDay)
class SearchDayAdmin(ReadOnly):
    list_display = [
        "day",
        "tenant",
        "kind",
        "searches",
        "first_pages",
        "zero_results",
        "with_click",
        "with_add_to_cart",
        "with_purchase",
    ]
    list_filter = ["tenant", "kind"]
    list_select_related = ["tenant"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in SearchDay._meta.fields]
