from __future__ import annotations

import uuid

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.api.limits import QUERY_IMAGE, limit_body
from catalog.api.parsers import JSONParser
from catalog.api.tenancy import TenantAPIView
from catalog.models import ApiKey, Media, Product
from search import search_log, service
from search.api.serializers import (
    Feedback,
    ImageSearch,
    Recommendation,
    SearchOptions,
    SearchResponseSerializer,
    TextSearch,
)
from search.models import SearchLog
from search.query import MAX_K, MAX_OFFSET, MAX_RANKED
from search.search_log import Logged


class SearchView(TenantAPIView):
    model = Media
    required_scope = ApiKey.Scope.READ  # a search is a POST that only reads

    def respond(self, request: Request, found: service.SearchResponse) -> Response:
        return Response(SearchResponseSerializer(found, context={"request": request}).data)

    def search(self, request: Request, vector, options: service.Options, kind: str) -> Response:
        """The page nearest to `vector`, logged as a search of `kind`."""
        return self.respond(request, service.search(self.tenant, vector, options, Logged(kind)))


class ImageSearchView(SearchView):
    parser_classes = [MultiPartParser]

    @limit_body(QUERY_IMAGE)
    @extend_schema(request={"multipart/form-data": ImageSearch}, responses=SearchResponseSerializer)
    def post(self, request: Request) -> Response:
        params = ImageSearch(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        vector = service.image_vector(upload, upload.size, params.validated_data.get("box"))
        options = SearchOptions.options(params.validated_data)
        return self.search(request, vector, options, SearchLog.Kind.IMAGE)


class TextSearchView(SearchView):
    parser_classes = [JSONParser]

    @extend_schema(request=TextSearch, responses=SearchResponseSerializer)
    def post(self, request: Request) -> Response:
        params = TextSearch(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        found = service.text_search(self.tenant, data["query"], data["mode"], SearchOptions.options(data))
        return self.respond(request, found)


class SimilarSearchView(SearchView):
    @extend_schema(
        parameters=[
            OpenApiParameter("k", {"type": "integer", "minimum": 1, "maximum": MAX_K}, description="default 10"),
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                description=f"default 0; offset + k <= {MAX_RANKED}",
            ),
            OpenApiParameter("min_score", {"type": "number", "minimum": 0, "maximum": 1}),
            OpenApiParameter("cutoff", str, enum=["none", "relative"]),
            OpenApiParameter("category", {"type": "string", "maxLength": 100}),
            # Its schema is the filter object sent as JSON (search/api/openapi.py).
            OpenApiParameter("filter", str, description="`filter` as URL-encoded JSON (API.md, Search v2)."),
        ],
        responses=SearchResponseSerializer,
    )
    def get(self, request: Request, media_id: int) -> Response:
        params = SearchOptions(data=request.query_params)
        params.is_valid(raise_exception=True)
        media = get_object_or_404(self.get_queryset(), pk=media_id)
        vector = service.media_vector(media)
        options = SearchOptions.options(params.validated_data, exclude_media_ids=(media.pk,))
        return self.search(request, vector, options, SearchLog.Kind.SIMILAR)


class RecommendView(SearchView):
    parser_classes = [JSONParser]

    @extend_schema(request=Recommendation, responses=SearchResponseSerializer)
    def post(self, request: Request) -> Response:
        params = Recommendation(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        ids = list(dict.fromkeys(data["positive"] + data["negative"]))
        found = self.get_queryset().in_bulk(ids)
        missing = [media_id for media_id in ids if media_id not in found]
        if missing:
            raise NotFound(f"No media {missing[0]}.")
        positive = [found[media_id] for media_id in dict.fromkeys(data["positive"])]
        negative = [found[media_id] for media_id in dict.fromkeys(data["negative"])]
        vector = service.recommendation_vector(positive, negative)
        # Not an example, nor another picture of an example's product.
        products = {m.product_id for m in found.values() if m.product_id is not None}
        siblings = self.get_queryset().filter(product_id__in=products).values_list("pk", flat=True)
        options = SearchOptions.options(data, exclude_media_ids=tuple(set(ids) | set(siblings)))
        return self.search(request, vector, options, SearchLog.Kind.RECOMMEND)


class FeedbackView(TenantAPIView):
    model = SearchLog
    required_scope = ApiKey.Scope.READ  # sent by the same storefront that searches
    parser_classes = [JSONParser]

    @extend_schema(request=Feedback, responses={202: None})
    def post(self, request: Request) -> Response:
        params = Feedback(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            search_id = uuid.UUID(data["search_id"])
        except ValueError:
            raise NotFound("No such search.") from None
        search = self.get_queryset().filter(pk=search_id).first()
        if search is None:
            raise NotFound("No such search.")
        media = product = None
        if "media_id" in data:
            media = Media.objects.filter(tenant=self.tenant, pk=data["media_id"]).first()
            if media is None:
                raise NotFound(f"No media {data['media_id']}.")
        if "product" in data:
            product = Product.objects.filter(tenant=self.tenant, sku=data["product"]).first()
            if product is None:
                raise NotFound(f"No product {data['product']!r}.")
        search_log.record_feedback(search, data["event"], media=media, product=product)
        return Response(status=status.HTTP_202_ACCEPTED)
