from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from catalog import formats
from catalog.models import Media, Product


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error, not a silent no-op."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            unknown = set(data.keys()) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


class ProductSerializer(StrictSerializer, serializers.ModelSerializer):
    media_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Product
        fields = ["sku", "title", "category", "attributes", "media_count", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # sku uniqueness is the database's job; create_product turns a clash into 409.
        validators: list = []

    def validate_attributes(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value

    def validate_sku(self, value: str) -> str:
        if self.instance is not None and value != self.instance.sku:
            raise serializers.ValidationError("The sku of a product cannot be changed.")
        return value


class MediaSerializer(serializers.ModelSerializer):
    product = serializers.CharField(source="product.sku", read_only=True, allow_null=True, default=None)
    frame_count = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()

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
            "created_at",
            "updated_at",
            "processed_at",
        ]
        read_only_fields = fields

    def get_frame_count(self, media: Media) -> int:
        annotated = getattr(media, "frame_count", None)
        return annotated if annotated is not None else media.frames.count()

    def get_file_url(self, media: Media) -> str:
        url = default_storage.url(media.storage_key)
        request = self.context.get("request")
        if request is not None and url.startswith("/"):
            return request.build_absolute_uri(url)
        return url


class MediaUploadSerializer(StrictSerializer):
    file = serializers.FileField(help_text=f"{formats.describe()}.")
    product = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="SKU of the product the media shows."
    )


class Presign(StrictSerializer):
    product = serializers.CharField(help_text="SKU of the product the media shows.")
    filename = serializers.CharField(max_length=255)
    content_type = serializers.CharField(max_length=100, help_text=", ".join(formats.BY_CONTENT_TYPE))


PresignResponse = inline_serializer(
    name="PresignResponse",
    fields={
        "url": serializers.URLField(),
        "fields": serializers.DictField(child=serializers.CharField()),
        "key": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
        "max_size": serializers.IntegerField(),
    },
)
