"""The console's search playground: an operator searches a tenant's catalog
as its shoppers would (a photo, or a region of it, or text in any mode, with
a filter and a cutoff) and sees the results as pictures, with where the
tenant's minimum score and the relative cutoff fall among them and the plan
the search used. Its searches are not logged: they are not shoppers'."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.urls import reverse

from catalog.models import SearchCutoff, Tenant, TenantSettings
from catalog.pictures import frame_picture_url, media_picture_url
from search import filters, service
from search.boxes import Box
from search.query import MAX_K
from search.service import ResultEntry, SearchResponse, TextMode


class PlaygroundForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.order_by("slug"), to_field_name="slug")
    query = forms.CharField(required=False, max_length=1000, label="Text")
    photo = forms.FileField(required=False, help_text="Drag on the preview to search a region only.")
    box = forms.CharField(required=False, widget=forms.HiddenInput)
    mode = forms.ChoiceField(choices=TextMode.choices, initial=TextMode.HYBRID, required=False, help_text="For text.")
    filter = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text='As in the API, e.g. {"category": "shoes", "attributes": {"color": ["red", "blue"]}}',
    )
    cutoff = forms.ChoiceField(
        choices=[("", "the tenant's default"), *SearchCutoff.choices], required=False, label="Cutoff"
    )
    k = forms.IntegerField(min_value=1, max_value=MAX_K, initial=20, label="Results")

    def clean_filter(self) -> filters.ProductFilter:
        text = self.cleaned_data["filter"].strip()
        if not text:
            return filters.ProductFilter()
        try:
            return filters.parse(json.loads(text))
        except (ValueError, RecursionError) as exc:  # FilterError is a ValueError
            raise forms.ValidationError(str(exc)) from None

    def clean_box(self) -> Box | None:
        text = self.cleaned_data["box"].strip()
        if not text:
            return None
        try:
            return Box.parse(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("query")) == bool(data.get("photo")):
            raise forms.ValidationError("Give a text or a photo (one of them).")
        return data


@dataclass(frozen=True)
class Shown:
    rank: int
    entry: ResultEntry
    picture_url: str
    below_min_score: bool  # the tenant's minimum score would drop it
    cut: bool  # the relative cutoff would drop it

    @property
    def dropped_by(self) -> str:
        """What would drop it from the shoppers' results ('' for nothing)."""
        return "minimum score" if self.below_min_score else "relative cutoff" if self.cut else ""


@dataclass(frozen=True)
class Outcome:
    response: SearchResponse
    shown: list[Shown]
    min_score: float
    cutoff_gap: float | None  # None: no relative cutoff
    cutoff_score: float | None  # the score the relative cutoff keeps from


def picture_url(entry: ResultEntry) -> str:
    """The result's picture: the frame's thumbnail, or the item's (lazily
    loaded from the storage where it can be, catalog/pictures.py)."""
    if entry.frame is not None and entry.frame.thumbnail_key:
        return frame_picture_url(entry.frame) or ""
    return media_picture_url(entry.media) or reverse("admin:ops-picture", args=[entry.media.pk])


def run(data: dict[str, Any]) -> Outcome:
    """The search the form describes (cleaned), every result down to score 0,
    each marked with what the tenant's thresholds would do to it. Raises
    DomainError for a photo it cannot search."""
    tenant: Tenant = data["tenant"]
    tenant_settings = TenantSettings.of(tenant)
    gap = tenant_settings.cutoff_gap(data["cutoff"] or None)
    # Everything from 0 and no cutoff: where the thresholds fall is shown, not applied.
    options = service.Options(k=data["k"], min_score=0.0, cutoff=SearchCutoff.NONE, product_filter=data["filter"])
    if data["photo"]:
        photo = data["photo"]
        vector = service.image_vector(photo, photo.size, data["box"])
        response = service.search(tenant, vector, options)
    else:
        response = service.text_search(tenant, data["query"], data["mode"] or TextMode.HYBRID, options, log=False)
    scores = [entry.score for entry in response.results if entry.score is not None]
    cutoff_score = max(scores) - gap if gap is not None and scores else None
    shown = [
        Shown(
            rank=rank,
            entry=entry,
            picture_url=picture_url(entry),
            below_min_score=entry.score is not None and entry.score < tenant_settings.min_similarity,
            cut=cutoff_score is not None and entry.score is not None and entry.score < cutoff_score,
        )
        for rank, entry in enumerate(response.results, start=1)
    ]
    return Outcome(response, shown, tenant_settings.min_similarity, gap, cutoff_score)


def picture_key(media_id: int, frame_id: str | None) -> str | None:
    """The storage key of a media item's picture (its thumbnail, or a frame's
    when `frame_id` names one of its frames); None when there is none."""
    from catalog.models import Media, VideoFrame

    if frame_id:
        frame = VideoFrame.objects.filter(media_id=media_id, pk=frame_id if frame_id.isdigit() else 0).first()
        return frame.thumbnail_key if frame is not None and frame.thumbnail_key else None
    media = Media.objects.filter(pk=media_id).first()
    if media is None:
        return None
    # Its thumbnail; an image processed before thumbnails were made, itself.
    return media.thumbnail_key or (media.storage_key if media.kind == Media.Kind.IMAGE else None)
