from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ops_console.health import run_checks
from ops_console.metrics import REGISTRY


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers while the process runs, without touching any dependency."""
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: database, Redis, storage and the model each answer; 503 if any does not."""
    results = run_checks()
    healthy = all(result.ok for result in results)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": {r.name: r.as_dict() for r in results}},
        status=200 if healthy else 503,
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
