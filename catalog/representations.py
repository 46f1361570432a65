"""How a media item reads outside the database: the API's media object
(API.md "Media"), which webhooks send as their `data` too. Outside `api/`
because the catalog's own webhooks render it (domain modules never import an
API)."""

from __future__ import annotations

from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import Media


class MediaSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.sku", read_only=True, allow_null=True, default=None)
    frame_count = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()
    duplicate_of: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    duplicate_kind = serializers.SerializerMethodField()

    class Meta:
        model = Media
        fields = [
            "id",
            "product",
            "kind",
            "status",
            "error",
            "attempts",
            "content_type",
            "size",
            "width",
            "height",
            "duration_ms",
            "frame_count",
            "file_url",
            "original_filename",
            "duplicate_of",
            "duplicate_kind",
            "created_at",
            "updated_at",
            "processed_at",
        ]
        read_only_fields = fields

    def get_frame_count(self, media: Media) -> int:
        annotated = getattr(media, "frame_count", None)
        return annotated if annotated is not None else media.frames.count()

    @extend_schema_field(serializers.ChoiceField(choices=Media.DuplicateKind.choices, allow_null=True))
    def get_duplicate_kind(self, media: Media) -> str | None:
        return media.duplicate_kind or None

    def get_file_url(self, media: Media) -> str:
        url = default_storage.url(media.storage_key)
        request = self.context.get("request")
        if request is not None and url.startswith("/"):
            return request.build_absolute_uri(url)
        return url
