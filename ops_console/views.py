from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers while the process runs, without touching any dependency."""
    return JsonResponse({"status": "ok"})
