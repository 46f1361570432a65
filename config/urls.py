from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from catalog.api import errors

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("catalog.api.urls")),
    path("api/v1/", include("search.api.urls")),
    path("", include("ops_console.urls")),
]

if settings.SERVE_MEDIA and not settings.S3_BUCKET_NAME:
    urlpatterns += [
        re_path(
            rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]

handler404 = errors.handler404
handler500 = errors.handler500
handler400 = errors.handler400
handler403 = errors.handler403
