from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from catalog import formats
from catalog.models import Product, WebhookEndpoint, WebhookEvent


class StrictSerializer(serializers.Serializer):
    """Takes exactly what the API schema says: refuses unknown fields, those
    the server sends back but never takes, a JSON value of the wrong type
    (DRF would read 0 as the text "0", or "10" as the number 10) and, in a
    form, an empty value of a field that cannot be blank (DRF would read it
    as not given)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            writable = {name: field for name, field in self.fields.items() if not field.read_only}
            refused = {
                name: [self.read_only_message(name) if name in self.fields else "Unknown field."]
                for name in sorted(set(data.keys()) - set(writable))
            }
            form = hasattr(data, "getlist")
            for name, field in writable.items():
                if name in data and name not in refused:
                    problem = _blank_in_form(field, data[name]) if form else _wrong_json_type(field, data[name])
                    if problem:
                        refused[name] = [problem]
            if refused:
                # With what the rest of the body gets wrong (a missing field, say).
                rest = {name: value for name, value in data.items() if name not in refused}
                try:
                    super().to_internal_value(rest)
                except serializers.ValidationError as exc:
                    if isinstance(exc.detail, dict):
                        raise serializers.ValidationError({**exc.detail, **refused}) from None
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)

    def read_only_message(self, name: str) -> str:
        return "Read only: the server sets it."


def _wrong_json_type(field: serializers.Field, value: Any) -> str | None:
    """What is wrong with a JSON value's type for `field` (None: its type is right, or null)."""
    if value is None:
        return None
    if isinstance(field, serializers.CharField | serializers.ChoiceField) and not isinstance(value, str):
        return "Must be a string."
    if isinstance(field, serializers.IntegerField) and (isinstance(value, bool) or not isinstance(value, int)):
        return "Must be a whole number."
    if isinstance(field, serializers.FloatField) and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "Must be a number."
    if isinstance(field, serializers.ListField) and not isinstance(value, list):
        return "Must be a list."
    return None


def _blank_in_form(field: serializers.Field, value: Any) -> str | None:
    if value == "" and not getattr(field, "allow_blank", False) and not isinstance(field, serializers.FileField):
        return "May not be blank: leave the field out instead."
    return None


@extend_schema_field({"type": "object", "description": "Any JSON object: names to values (search filters read it)."})
class AttributesField(serializers.JSONField):
    pass


class ProductSerializer(StrictSerializer, serializers.ModelSerializer):
    media_count = serializers.IntegerField(read_only=True)
    attributes = AttributesField(required=False)

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


class BulkRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The row's 0-based place in the body.")
    sku = serializers.CharField(allow_null=True, help_text="The row's sku as given (valid or not), when it is text.")
    error = inline_serializer("BulkRowErrorBody", {"code": serializers.CharField(), "message": serializers.CharField()})


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    # A declared field (DRF's metaclass takes it out of the class), not Serializer.errors.
    errors = BulkRowErrorSerializer(many=True)  # type: ignore[assignment]


class ProductUpdateSerializer(ProductSerializer):
    """A change of a product: its sku names it in the URL and cannot change."""

    class Meta(ProductSerializer.Meta):
        read_only_fields = ["sku", "created_at", "updated_at"]

    def read_only_message(self, name: str) -> str:
        return "The sku of a product cannot be changed." if name == "sku" else super().read_only_message(name)


class MediaUploadSerializer(StrictSerializer):
    # Empty too: the content check refuses it as it refuses any file it cannot read (415).
    file = serializers.FileField(allow_empty_file=True, help_text=f"{formats.describe()}.")
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


class WebhookEndpointSerializer(StrictSerializer, serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1, max_length=len(WebhookEvent)
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "is_active", "created_at"]
        read_only_fields = ["id", "is_active", "created_at"]
        extra_kwargs = {"url": {"help_text": "https, on a host that resolves to public addresses only."}}

    def validate_events(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each event once.")
        return value


class NewWebhookEndpointSerializer(WebhookEndpointSerializer):
    """The endpoint as created: with its signing secret, shown only here."""

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]
