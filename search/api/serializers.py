import dataclasses
import json
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog import formats
from catalog.api.serializers import StrictSerializer
from catalog.models import Media, SearchCutoff
from catalog.storable import unstorable_text
from search import filters
from search.boxes import BOX_PATTERN, BOX_REFUSED, Box
from search.models import SearchFeedback
from search.query import MAX_K, MAX_OFFSET, MAX_RANKED
from search.service import Options, TextMode

# A recommendation's examples: enough to describe a taste, few enough to
# average in one query.
MAX_EXAMPLES = 20

_SCALAR = {"oneOf": [{"type": "string", "maxLength": filters.MAX_TEXT}, {"type": "number"}, {"type": "boolean"}]}


def _texts_schema(max_length: int) -> dict:
    text = {"type": "string", "maxLength": max_length}
    many = {"type": "array", "items": text, "minItems": 1, "maxItems": filters.MAX_VALUES}
    return {"oneOf": [text, many]}


FILTER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "Conditions on the product, all of which must hold (a list: any of its values; a range: numbers only). "
        "In a multipart form or a query string, the same object as a JSON string."
    ),
    "properties": {
        "category": _texts_schema(100),
        "sku": _texts_schema(64),
        "attributes": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": filters.MAX_ATTRIBUTES,
            "additionalProperties": {
                "oneOf": [
                    _SCALAR,
                    {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": filters.MAX_VALUES},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "minProperties": 1,
                        "properties": {op: {"type": "number"} for op in filters.RANGE_OPERATORS},
                    },
                ]
            },
        },
    },
}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a filter can hold.")


@extend_schema_field(FILTER_SCHEMA)
class FilterField(serializers.Field):
    """API.md's `filter`: a JSON object, or a JSON string of one (forms, query strings)."""

    def to_internal_value(self, data: Any) -> filters.ProductFilter:
        if isinstance(data, str):
            try:
                data = json.loads(data, parse_constant=_refuse_constant)
            except (ValueError, RecursionError):
                message = "Must be a JSON object (in a form or query string, as JSON)."
                raise serializers.ValidationError(message) from None
        where = unstorable_text(data, "filter")  # the JSON parser checks a JSON body; this, a form's or query's
        if where is not None:
            raise serializers.ValidationError(f"{where!a}: holds a NUL character or a lone surrogate.")
        try:
            return filters.parse(data)
        except filters.FilterError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        return value


def _min_score(*, allow_null: bool) -> serializers.FloatField:
    return serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        allow_null=allow_null,
        help_text="Drop results below this cosine similarity (default: the tenant's threshold).",
    )


class SearchOptions(StrictSerializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    offset = serializers.IntegerField(
        min_value=0,
        max_value=MAX_OFFSET,
        default=0,
        help_text=f"Skip that many results of the same ranking (offset + k <= {MAX_RANKED}).",
    )
    min_score = _min_score(allow_null=True)
    category = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="Only this category (v1; `filter` says more)."
    )
    filter = FilterField(required=False)
    cutoff = serializers.ChoiceField(
        choices=SearchCutoff.choices,
        required=False,
        help_text="relative: also drop results scoring more than the tenant's relative cutoff below the best one "
        "(default: the tenant's setting).",
    )

    def validate(self, attrs: dict) -> dict:
        """`filter` as the search takes it: with `category`, if given, as its category."""
        product_filter = attrs.get("filter") or filters.ProductFilter()
        if attrs.get("category"):
            # All conditions hold: with filter.category too, the one category if it is among those.
            wanted = attrs["category"]
            kept = (wanted,) if product_filter.categories is None or wanted in product_filter.categories else ()
            product_filter = dataclasses.replace(product_filter, categories=kept)
        attrs["filter"] = product_filter
        if attrs["offset"] + attrs["k"] > MAX_RANKED:
            raise serializers.ValidationError({"offset": [f"offset + k must be at most {MAX_RANKED}."]})
        return attrs

    @staticmethod
    def options(attrs: dict, exclude_media_ids: tuple[int, ...] = ()) -> Options:
        return Options(
            k=attrs["k"],
            offset=attrs["offset"],
            min_score=attrs.get("min_score"),
            cutoff=attrs.get("cutoff"),
            product_filter=attrs["filter"],
            exclude_media_ids=exclude_media_ids,
        )


class ImageSearch(SearchOptions):
    min_score = _min_score(allow_null=False)  # a form has no null: leave it out for the default
    # A plain file: its content is checked by search.service.image_vector with
    # the upload rules, so refusals carry the same error codes.
    file = serializers.FileField(
        allow_empty_file=True,
        help_text=f"A photo: {formats.describe(Media.Kind.IMAGE)}, at most {settings.MAX_SEARCH_IMAGE_BYTES} bytes.",
    )
    box = serializers.RegexField(
        BOX_PATTERN,
        error_messages={"invalid": BOX_REFUSED},
        required=False,
        max_length=100,
        help_text='"x,y,w,h": the region to search, as fractions of the photo\'s width and height (after EXIF '
        "orientation).",
    )

    def validate_box(self, value: str) -> Box:
        try:
            return Box.parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TextSearch(SearchOptions):
    query = serializers.CharField(max_length=1000, trim_whitespace=True)
    mode = serializers.ChoiceField(
        choices=TextMode.choices,
        default=TextMode.HYBRID,
        help_text="hybrid: keywords and CLIP fused; vector: CLIP only (v1); keyword: full-text only.",
    )


class Recommendation(SearchOptions):
    positive = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_EXAMPLES, help_text="Media ids."
    )
    negative = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_EXAMPLES,
        help_text="Media ids to move away from.",
    )


class Feedback(StrictSerializer):
    search_id = serializers.CharField(max_length=100)
    event = serializers.ChoiceField(choices=SearchFeedback.Event.choices)
    media_id = serializers.IntegerField(min_value=1, required=False)
    product = serializers.CharField(max_length=64, required=False, help_text="The product's sku.")


class ResultProductSerializer(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    category = serializers.CharField()


class ResultFrameSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    timestamp_ms = serializers.IntegerField()
    thumbnail_url = serializers.SerializerMethodField()

    def get_thumbnail_url(self, frame) -> str | None:
        if not frame.thumbnail_key:
            return None
        url = default_storage.url(frame.thumbnail_key)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None and url.startswith("/") else url


class ResultSerializer(serializers.Serializer):
    product = ResultProductSerializer(allow_null=True)
    score = serializers.FloatField(allow_null=True, help_text="Cosine similarity; null for a keyword-only match.")
    media_id = serializers.IntegerField(source="media.pk")
    kind = serializers.CharField(source="media.kind")
    frame = ResultFrameSerializer(allow_null=True)
    matched = serializers.ListField(
        child=serializers.ChoiceField(choices=["vector", "keyword"]),
        required=False,
        help_text="Text searches: which rankings found it.",
    )

    def to_representation(self, instance: Any) -> dict:
        data = super().to_representation(instance)
        if instance.matched is None:
            data.pop("matched")
        return data


class SearchResponseSerializer(serializers.Serializer):
    results = ResultSerializer(many=True)
    next_offset = serializers.IntegerField(allow_null=True, help_text="The next page's offset; null: none.")
    search_id = serializers.CharField(help_text="Name it in feedback on these results.")
    took_ms = serializers.FloatField()
    model = serializers.CharField()
