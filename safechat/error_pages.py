"""The portal's error pages (400, 403, 404, 405, 500, a refused CSRF token) and the favicon.

Each page is the portal's own (``templates/<status>.html``, extending ``base.html``): a
way back to the chat, never a stack trace or an exception's internals, and the request's
id (``X-Request-ID``, ``safechat.middleware.RequestIdMiddleware``) to quote to support.
Under ``/api/`` the same errors are problem details instead: ``safechat.urls`` wraps
these handlers in ``safechat.api.api_error_handler``, and :func:`csrf_failure` answers
an API path itself.

Django has no ``handler405``: its method decorators (``require_POST``...) answer an empty
405, which ``safechat.middleware.MethodNotAllowedMiddleware`` replaces with
:func:`method_not_allowed` (problem details under ``/api/``).

The 404, 403 and 405 pages render with the request (the navigation of a signed-in person);
the 400 and 500 pages without it, as Django's own do: a request that failed to parse, or
a server whose database is what failed, must still get its page, so nothing there reads
the session or the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template import loader
from django.templatetags.static import static
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.http import require_safe

from safechat.problems import is_api_path, problem_response
from safechat.request_context import current_request_id

CSRF_REFUSED = (
    "The form was sent without a valid security token: the page was probably open for a "
    "long time, or you signed in again meanwhile. Go back, reload the page and send it again."
)
# How long a browser may keep the favicon's redirect: the static file's name carries its
# hash, which a new release may change.
FAVICON_REDIRECT_SECONDS = 24 * 60 * 60


def request_id_of(request: HttpRequest | None) -> str:
    """The id this request is served under ("" when none is known)."""
    request_id = getattr(request, "request_id", "") or current_request_id.get()
    return "" if request_id == "-" else str(request_id)


def _page(
    request: HttpRequest,
    *,
    template: str,
    status: int,
    context: dict[str, Any] | None = None,
    with_request: bool,
) -> HttpResponse:
    values = {"request_id": request_id_of(request), **(context or {})}
    if with_request:
        response = render(request, template, values, status=status)
    else:
        response = HttpResponse(loader.get_template(template).render(values), status=status)
    # It may name the person signed in: no cache keeps it.
    add_never_cache_headers(response)
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The portal's 400 page (``handler400``)."""
    return _page(request, template="400.html", status=400, with_request=False)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The portal's 403 page (``handler403``), with the refusal's own words when it has
    some: a ``Refused``'s message is written for the person refused (the API shows it as
    the problem's ``detail`` too)."""
    reason = str(exception) if exception is not None else ""
    return _page(
        request, template="403.html", status=403, context={"reason": reason}, with_request=True
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The portal's 404 page (``handler404``). What was not found is not said: a room one
    may not see is a 404 like a room that does not exist, and the page must not tell
    them apart."""
    return _page(request, template="404.html", status=404, with_request=True)


def method_not_allowed(request: HttpRequest, *, allowed: Sequence[str]) -> HttpResponse:
    """The portal's 405 page (RFC 9110, 15.5.6): the address exists but does not take
    the request's method, typically a form's target opened as a page (a GET on a
    POST-only path). It says what to do instead, and its ``Allow`` header lists the
    methods the address takes."""
    response = _page(
        request,
        template="405.html",
        status=405,
        context={"form_target": "POST" in allowed and request.method in ("GET", "HEAD")},
        with_request=True,
    )
    response["Allow"] = ", ".join(allowed)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """The portal's 500 page (``handler500``): nothing of the error, the request id."""
    return _page(request, template="500.html", status=500, with_request=False)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a portal form without a valid CSRF token gets the portal's
    403 page saying what to do; an API path (``safechat.problems.is_api_path``) gets
    the problem details the API answers a missing token with. Django's ``reason`` (which
    check failed) is not shown: the page says what helps."""
    if is_api_path(request.path):
        return problem_response(
            status=403,
            code="permission_denied",
            detail=f"CSRF Failed: {reason}" if reason else "CSRF Failed.",
            request=request,
        )
    return _page(
        request,
        template="403.html",
        status=403,
        context={"reason": CSRF_REFUSED, "title": "Form expired"},
        with_request=True,
    )


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: a redirect to the SVG icon among the static files (its hashed
    name in production), for clients that ask for it without reading the page's
    ``<link rel="icon">``. Open to anyone, like the static files themselves."""
    response = HttpResponseRedirect(static("safechat/favicon.svg"))
    patch_cache_control(response, public=True, max_age=FAVICON_REDIRECT_SECONDS)
    return response
