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
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

# Only styles: the UIs build their look at run time. Scripts stay 'self' only.
DOCS_CSP = {"style-src": ["'unsafe-inline'"]}


class ApiSchemaView(SpectacularAPIView):
    """The OpenAPI schema (``/api/schema/``). The API has one version, the schema's own
    (``SPECTACULAR_SETTINGS["VERSION"]``): a ``version`` query parameter is refused (400
    ``invalid``, the parameter ``version``, code ``unknown``), where drf-spectacular
    would write any value into the document's ``info.version`` and its
    ``Content-Disposition`` header (a line break there is a server error)."""

    @extend_schema(exclude=True)  # the schema is not an operation of itself
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if "version" in request.query_params:
            raise ValidationError(
                {
                    "version": [
                        ErrorDetail(
                            "The API has one version, the schema's own; not a parameter.",
                            code="unknown",
                        )
                    ]
                }
            )
        response: Response = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        return response


class ApiDocsSwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI; its start-up script is served by this view at ``?script=``."""

    metadata_class = None  # OPTIONS: 405, not a page rendered as metadata


class ApiDocsRedocView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"
    metadata_class = None


def docs_view(view: type[Any], **initkwargs: Any) -> Callable[..., Any]:
    """``view`` as a Django view under the documentation pages' CSP."""
    return csp_update(DOCS_CSP)(view.as_view(**initkwargs))
