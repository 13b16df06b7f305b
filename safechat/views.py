"""Process-level endpoints for load balancers and orchestrators."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from safechat.readiness import run_checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 only if the database, channel layer and broker all answer."""
    results = run_checks()
    ready = all(result.ok for result in results)
    body: dict[str, object] = {
        "status": "ready" if ready else "not ready",
        "checks": {r.name: r.as_json() for r in results},
    }
    return JsonResponse(body, status=200 if ready else 503)
