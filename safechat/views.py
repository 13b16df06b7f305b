"""Process-level endpoints for load balancers and orchestrators."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from safechat.readiness import run_checks, run_warnings


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches no dependency."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 only if every check answers (the database, channel layer, broker,
    master and audit keys, and clamd when one is configured); ``warnings`` names what an
    operator should know that does not stop the process serving (no scanner configured)."""
    results = run_checks()
    ready = all(result.ok for result in results)
    body: dict[str, object] = {
        "status": "ready" if ready else "not ready",
        "checks": {r.name: r.as_json() for r in results},
    }
    warnings = run_warnings()
    if warnings:
        body["warnings"] = warnings
    return JsonResponse(body, status=200 if ready else 503)
