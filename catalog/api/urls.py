from rest_framework.routers import SimpleRouter

from catalog.api.views import MediaViewSet, ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="product")
router.register("media", MediaViewSet, basename="media")

urlpatterns = router.urls
