"""The API mounted under other names: the upload and the query-photo views
at new paths, everything else where it was. A limit declared by a view must
follow it there (tests/test_body_limits.py)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from catalog.api.views import MediaViewSet
from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns
from search.api.views import ImageSearchView

router = SimpleRouter()
router.register("files", MediaViewSet, basename="renamed-media")

urlpatterns = [
    path("api/v2/", include(router.urls)),
    path("api/v2/find-by-photo", ImageSearchView.as_view(), name="renamed-search-image"),
    *project_urlpatterns,
]
