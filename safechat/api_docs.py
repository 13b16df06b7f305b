"""The API's documentation pages: Swagger UI and Redoc, from SafeChat's own static files.

Both load only scripts the application serves itself (``drf-spectacular-sidecar``), so
the site's Content-Security-Policy (``script-src 'self'``) holds: Swagger UI's start-up
script is a separate file (the "split" view), Redoc starts from an element, not an
inline script. Both inject their styles at run time, so these two pages alone allow
inline styles; never inline scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

# Only styles: the UIs build their look at run time. Scripts stay 'self' only.
DOCS_CSP = {"style-src": ["'unsafe-inline'"]}


class ApiDocsSwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI; its start-up script is served by this view at ``?script=``."""

    metadata_class = None  # OPTIONS: 405, not a page rendered as metadata


class ApiDocsRedocView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"
    metadata_class = None


def docs_view(view: type[Any], **initkwargs: Any) -> Callable[..., Any]:
    """``view`` as a Django view under the documentation pages' CSP."""
    return csp_update(DOCS_CSP)(view.as_view(**initkwargs))
