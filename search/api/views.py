from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.limits import QUERY_IMAGE, limit_body
from catalog.api.parsers import JSONParser
from catalog.api.tenancy import TenantAPIView
from catalog.models import ApiKey, Media
from search import service
from search.api.serializers import ImageSearchRequest, SearchOptions, SearchResponseSerializer, TextSearchRequest


class SearchView(TenantAPIView):
    model = Media
    required_scope = ApiKey.Scope.READ  # a search is a POST that only reads

    def respond(self, request: Request, vector, options: dict, exclude_media_id: int | None = None) -> Response:
        found = service.search(
            self.tenant,
            vector,
            k=options["k"],
            min_score=options.get("min_score"),
            product_filter=options["filter"],
            exclude_media_id=exclude_media_id,
        )
        return Response(SearchResponseSerializer(found, context={"request": request}).data)


class ImageSearchView(SearchView):
    parser_classes = [MultiPartParser, FormParser]

    @limit_body(QUERY_IMAGE)
    @extend_schema(request={"multipart/form-data": ImageSearchRequest}, responses=SearchResponseSerializer)
    def post(self, request: Request) -> Response:
        params = ImageSearchRequest(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        vector = service.image_vector(upload, upload.size)
        return self.respond(request, vector, params.validated_data)


class TextSearchView(SearchView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(request=TextSearchRequest, responses=SearchResponseSerializer)
    def post(self, request: Request) -> Response:
        params = TextSearchRequest(data=request.data)
        params.is_valid(raise_exception=True)
        vector = service.text_vector(params.validated_data["query"])
        return self.respond(request, vector, params.validated_data)


class SimilarSearchView(SearchView):
    @extend_schema(
        parameters=[
            OpenApiParameter("k", int, description="1..100, default 10"),
            OpenApiParameter("min_score", float),
            OpenApiParameter("category", str),
            OpenApiParameter("filter", str, description="`filter` as URL-encoded JSON (API.md, Search v2)."),
        ],
        responses=SearchResponseSerializer,
    )
    def get(self, request: Request, media_id: int) -> Response:
        params = SearchOptions(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        media = get_object_or_404(self.get_queryset(), pk=media_id)
        vector = service.media_vector(media)
        return self.respond(request, vector, params.validated_data, exclude_media_id=media.pk)
