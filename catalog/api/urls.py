from django.urls import path
from rest_framework.routers import SimpleRouter

from catalog.api.parsers import JSONParser, NDJSONParser
from catalog.api.views import MediaViewSet, ProductViewSet, WebhookEndpointViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")
router.register("media", MediaViewSet, basename="media")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    # API.md's path has no trailing slash, as the search operations' have none.
    path(
        "products/bulk",
        ProductViewSet.as_view({"post": "bulk"}, parser_classes=[JSONParser, NDJSONParser]),
        name="product-bulk",
    ),
    *router.urls,
]
