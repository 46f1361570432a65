from django.conf import settings
from django.core.files.storage import default_storage
from rest_framework import serializers

from catalog import formats
from catalog.api.serializers import StrictSerializer
from catalog.models import Media
from search.query import MAX_K


class SearchOptions(StrictSerializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    min_score = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        allow_null=True,
        help_text="Drop results below this cosine similarity (default: the tenant's threshold).",
    )
    category = serializers.CharField(required=False, allow_blank=True, max_length=100)


class ImageSearchRequest(SearchOptions):
    # A plain file: its content is checked by search.service.image_vector with
    # the upload rules, so refusals carry the same error codes.
    file = serializers.FileField(
        help_text=f"A photo: {formats.describe(Media.Kind.IMAGE)}, at most {settings.MAX_SEARCH_IMAGE_BYTES} bytes."
    )


class TextSearchRequest(SearchOptions):
    query = serializers.CharField(max_length=1000, trim_whitespace=True)


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
    score = serializers.FloatField()
    media_id = serializers.IntegerField(source="media.pk")
    kind = serializers.CharField(source="media.kind")
    frame = ResultFrameSerializer(allow_null=True)


class SearchResponseSerializer(serializers.Serializer):
    results = ResultSerializer(many=True)
    took_ms = serializers.FloatField()
    model = serializers.CharField()
