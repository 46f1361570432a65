"""Retraining the product recognizer, its versions, and the review list of
media it could not assign on its own."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from catalog import pictures
from catalog.errors import Conflict
from catalog.models import Tenant
from search.models import RecognizerModel, RecognizerSuggestion
from search.recognizer import review, versions


class TrainForm(forms.Form):
    tenant = forms.ModelChoiceField(Tenant.objects.filter(is_active=True), to_field_name="slug")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@admin.register(RecognizerModel)
class RecognizerModelAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "version",
        "state",
        "is_active",
        "top1",
        "top5",
        "classes",
        "train_media",
        "test_media",
        "train_samples",
        "seconds",
        "created_at",
        "created_by",
    ]
    list_display_links = ["version"]
    list_filter = ["tenant", "status", "is_active"]
    list_select_related = ["tenant", "created_by"]
    exclude = ["parameters"]
    actions = ["activate", "roll_back"]
    change_list_template = "admin/search/recognizermodel/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "parameters"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training

    def has_delete_permission(self, request: HttpRequest, obj: RecognizerModel | None = None) -> bool:
        return obj is None or not obj.is_active

    def get_urls(self):
        train = self.admin_site.admin_view(self.train_view)
        return [path("train/", train, name="search_recognizermodel_train"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        running = RecognizerModel.objects.filter(
            status__in=[RecognizerModel.Status.QUEUED, RecognizerModel.Status.TRAINING]
        ).exists()
        return super().changelist_view(request, {**(extra_context or {}), "training_running": running})

    @admin.display(description="status")
    def state(self, version: RecognizerModel) -> str:
        if version.status in (RecognizerModel.Status.QUEUED, RecognizerModel.Status.TRAINING):
            return format_html(
                '<progress max="100" value="{}"></progress> {}% {}',
                version.progress,
                version.progress,
                version.progress_message,
            )
        if version.status == RecognizerModel.Status.FAILED:
            return format_html('failed: <span class="errornote-inline">{}</span>', version.error)
        return version.status

    @admin.display(description="top-1", ordering="top1_accuracy")
    def top1(self, version: RecognizerModel) -> str:
        return _percent(version.top1_accuracy)

    @admin.display(description="top-5", ordering="top5_accuracy")
    def top5(self, version: RecognizerModel) -> str:
        return _percent(version.top5_accuracy)

    @admin.display(description="training time", ordering="training_seconds")
    def seconds(self, version: RecognizerModel) -> str:
        return "—" if version.training_seconds is None else f"{version.training_seconds:.1f} s"

    def train_view(self, request: HttpRequest):
        form = TrainForm(request.POST or None, initial={"tenant": request.GET.get("tenant")})
        if request.method == "POST" and form.is_valid():
            tenant = form.cleaned_data["tenant"]
            try:
                version = versions.start_training(tenant, request.user)
            except Conflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"Training version {version.version} of {tenant.slug}'s recognizer: progress below."
                )
                return HttpResponseRedirect(reverse("admin:search_recognizermodel_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Train a new recognizer version",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/search/recognizermodel/train.html", context)

    @admin.action(description="Activate the selected version (one per tenant)")
    def activate(self, request: HttpRequest, queryset: QuerySet[RecognizerModel]) -> None:
        for version in queryset.select_related("tenant").order_by("tenant", "-version"):
            try:
                versions.activate(version)
            except Conflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Version {version.version} is now {version.tenant.slug}'s recognizer; "
                    "it is predicting products for the unassigned media.",
                )

    @admin.action(description="Roll back the tenants of the selected versions to their previous version")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[RecognizerModel]) -> None:
        for tenant in Tenant.objects.filter(pk__in=queryset.values("tenant")):
            try:
                version = versions.rollback(tenant)
            except Conflict as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{tenant.slug} is back to version {version.version}.")


class _SuggestionList(ChangeList):
    """The review list's page, with its candidate products' pictures found in one query."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        ids = {candidate["product"] for suggestion in self.result_list for candidate in suggestion.candidates}
        found = pictures.product_pictures(ids)
        for suggestion in self.result_list:
            suggestion.candidate_pictures = found


@admin.register(RecognizerSuggestion)
class RecognizerSuggestionAdmin(admin.ModelAdmin):
    list_display = ["preview", "item", "tenant", "choices", "recognizer_version", "created_at"]
    list_display_links = None
    list_filter = ["tenant"]
    list_select_related = ["tenant", "media", "recognizer"]
    search_fields = ["media__original_filename"]
    actions = ["accept_best", "dismiss"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RecognizerSuggestion]:
        return RecognizerSuggestion.objects.waiting()

    def get_changelist(self, request: HttpRequest, **kwargs):
        return _SuggestionList

    def get_urls(self):
        accept = self.admin_site.admin_view(require_POST(self.accept_view))
        return [
            path("<int:pk>/accept/", accept, name="search_recognizersuggestion_accept"),
            *super().get_urls(),
        ]

    @admin.display(description="")
    def preview(self, suggestion: RecognizerSuggestion):
        return pictures.media_picture(suggestion.media, pictures.FRAME_SIDE)

    @admin.display(description="media")
    def item(self, suggestion: RecognizerSuggestion):
        url = reverse("admin:catalog_media_change", args=[suggestion.media_id])
        name = suggestion.media.original_filename or f"#{suggestion.media_id}"
        return format_html('<a href="{}">{} {}</a>', url, suggestion.media.kind, name)

    @admin.display(description="suggested products (click to assign)", ordering="top_confidence")
    def choices(self, suggestion: RecognizerSuggestion):
        # Buttons of the changelist's own form (which carries the CSRF token),
        # posted to the accept view instead of the actions.
        # Each candidate product's picture beside its button (_SuggestionList
        # finds them for the whole page at once).
        url = reverse("admin:search_recognizersuggestion_accept", args=[suggestion.pk])
        found = getattr(suggestion, "candidate_pictures", {})
        return format_html_join(
            " ",
            '<span class="sm-candidate" style="display:inline-block;margin-right:10px">{} '
            '<button type="submit" class="button" formaction="{}" name="product" value="{}">Accept {} ({}%)</button>'
            "</span>",
            (
                (
                    pictures.picture_tag(found.get(candidate["product"]), candidate["sku"]),
                    url,
                    candidate["product"],
                    candidate["sku"],
                    f"{candidate['confidence'] * 100:.0f}",
                )
                for candidate in suggestion.candidates
            ),
        )

    @admin.display(description="version", ordering="recognizer__version")
    def recognizer_version(self, suggestion: RecognizerSuggestion) -> str:
        return f"v{suggestion.recognizer.version}"

    def accept_view(self, request: HttpRequest, pk: int):
        suggestion = get_object_or_404(RecognizerSuggestion, pk=pk)
        try:
            product = review.accept_suggestion(suggestion, int(request.POST.get("product", "0")))
        except (Conflict, ValueError) as exc:
            self.message_user(request, getattr(exc, "message", "Choose one of the suggested products."), messages.ERROR)
        else:
            self.message_user(request, f"Media {suggestion.media_id} is now {product.sku}.")
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:search_recognizersuggestion_changelist")
        return HttpResponseRedirect(back)

    @admin.action(description="Accept the best suggestion of each selected item")
    def accept_best(self, request: HttpRequest, queryset: QuerySet[RecognizerSuggestion]) -> None:
        accepted = 0
        for suggestion in queryset:
            try:
                review.accept_suggestion(suggestion, suggestion.candidates[0]["product"])
            except Conflict:
                continue
            accepted += 1
        self.message_user(request, f"Assigned {accepted} media to their best suggestion.")

    @admin.action(description="Dismiss the suggestions of the selected items (they stay unassigned)")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[RecognizerSuggestion]) -> None:
        count, _ = RecognizerSuggestion.objects.filter(pk__in=queryset.values("pk")).delete()
        self.message_user(request, f"Dismissed the suggestions of {count} media.")
