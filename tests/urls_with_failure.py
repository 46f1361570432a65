"""The project's URLs plus one API view that crashes, to see the 500 body."""

from django.urls import path
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns


class Crash(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("simulated bug")


urlpatterns = [path("api/v1/crash/", Crash.as_view()), *project_urlpatterns]
