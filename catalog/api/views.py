from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.filters import MediaFilter, ProductFilter
from catalog.api.limits import UPLOAD, limit_body
from catalog.api.parsers import JSONParser
from catalog.api.serializers import (
    BulkResultSerializer,
    MediaUploadSerializer,
    NewWebhookEndpointSerializer,
    Presign,
    PresignResponse,
    ProductSerializer,
    ProductUpdateSerializer,
    WebhookEndpointSerializer,
)
from catalog.api.tenancy import TenantViewSet
from catalog.bulk import MAX_ROWS, upsert_products
from catalog.media import delete_media
from catalog.models import SKU_CHARS, Media, Product, WebhookEndpoint
from catalog.presign import presigned_upload
from catalog.products import create_product, delete_products
from catalog.representations import MediaSerializer
from catalog.transitions import request_reprocess
from catalog.webhook_targets import TargetRefused
from catalog.webhooks import create_endpoint
from media_pipeline.uploads import ingest_upload


class ProductViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSet,
):
    model = Product
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    lookup_field = "sku"
    # Only what a SKU may be: anything else is a 404 before any query.
    lookup_value_regex = SKU_CHARS
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scope_queryset(self, queryset):
        return queryset.annotate(media_count=Count("media")).order_by("sku")

    def get_serializer_class(self) -> type[ProductSerializer]:
        return ProductUpdateSerializer if self.action == "partial_update" else ProductSerializer

    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = create_product(self.tenant, **serializer.validated_data)
        created = self.get_queryset().get(pk=product.pk)  # with its media count, as every product answer has
        return Response(self.get_serializer(created).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, sku: str) -> Response:
        product = self.get_object()
        delete_products(Product.objects.filter(pk=product.pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={
            "application/json": {
                "type": "array",
                "maxItems": MAX_ROWS,
                # Any item: one that is not a product is an error of its row, not of the request.
                "items": {"description": "A product as `POST /api/v1/products/` takes it (ProductRequest)."},
            },
            "application/x-ndjson": {
                "type": "string",
                "description": f"One product a line, at most {MAX_ROWS}; a line that is not a product is a row error.",
            },
        },
        responses={200: OpenApiResponse(BulkResultSerializer, "Each row created, updated, unchanged or refused.")},
    )
    def bulk(self, request: Request) -> Response:
        """Up to MAX_ROWS products upserted by sku (catalog/bulk.py); a bad row is
        reported by its index and never blocks the others."""
        rows = request.data
        if not isinstance(rows, list):
            raise ValidationError({"body": ["A JSON array of products (or NDJSON, one a line)."]})
        if len(rows) > MAX_ROWS:
            raise ValidationError({"body": [f"At most {MAX_ROWS} products a request; this one has {len(rows)}."]})
        return Response(BulkResultSerializer(upsert_products(self.tenant, rows).as_json()).data)


class MediaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    model = Media
    serializer_class = MediaSerializer
    filterset_class = MediaFilter
    lookup_value_regex = r"\d+"

    def scope_queryset(self, queryset):
        return queryset.select_related("product").annotate(frame_count=Count("frames")).order_by("-created_at", "-id")

    # An upload is a file: multipart (the presigned upload's request is JSON).
    parser_classes = [MultiPartParser]

    @limit_body(UPLOAD)
    @extend_schema(
        request={"multipart/form-data": MediaUploadSerializer},
        responses={
            202: OpenApiResponse(MediaSerializer, "Stored and queued for processing."),
            200: OpenApiResponse(MediaSerializer, "The same bytes were already uploaded to this product."),
        },
    )
    def create(self, request: Request) -> Response:
        serializer = MediaUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = self._product_for(serializer.validated_data.get("product"))
        upload = serializer.validated_data["file"]
        result = ingest_upload(self.tenant, upload, upload.size, upload.name or "", product)
        media = self.get_queryset().get(pk=result.media.pk)
        return Response(
            self.get_serializer(media).data,
            status=status.HTTP_202_ACCEPTED if result.created else status.HTTP_200_OK,
        )

    def _product_for(self, sku: str | None) -> Product | None:
        return self._product(sku) if sku else None

    def _product(self, sku: str) -> Product:
        product = Product.objects.filter(tenant=self.tenant, sku=sku).first()
        if product is None:  # another tenant's too, exactly like a missing one
            raise NotFound(f"No product with sku '{sku}'.")
        return product

    def destroy(self, request: Request, pk: str) -> Response:
        media = self.get_object()
        delete_media(Media.objects.filter(pk=media.pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=Presign, responses={201: PresignResponse})
    @action(detail=False, methods=["post"], url_path="uploads", parser_classes=[JSONParser])
    def uploads(self, request: Request) -> Response:
        """A presigned S3 POST for one file; the upload then arrives through the S3 event."""
        params = Presign(data=request.data)
        params.is_valid(raise_exception=True)
        product = self._product(params.validated_data["product"])
        post = presigned_upload(product, params.validated_data["filename"], params.validated_data["content_type"])
        return Response(post, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: MediaSerializer})
    @action(detail=True, methods=["post"])
    def reprocess(self, request: Request, pk: str) -> Response:
        media = request_reprocess(self.get_object())
        media = self.get_queryset().get(pk=media.pk)
        return Response(self.get_serializer(media).data, status=status.HTTP_202_ACCEPTED)


class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    """The tenant's webhook endpoints (API.md "Webhooks"); deliveries are in the admin."""

    model = WebhookEndpoint
    serializer_class = WebhookEndpointSerializer
    lookup_value_regex = r"\d+"
    parser_classes = [JSONParser]

    def scope_queryset(self, queryset):
        return queryset.order_by("-created_at", "-id")

    @extend_schema(
        request=WebhookEndpointSerializer,
        responses={201: OpenApiResponse(NewWebhookEndpointSerializer, "Created; its secret is shown only here.")},
    )
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            endpoint = create_endpoint(self.tenant, **serializer.validated_data)
        except TargetRefused as exc:
            raise ValidationError({"url": [exc.message]}) from None
        return Response(NewWebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)
