"""What the portal pages of accounts share: the signed-in user, safe redirects, error lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import User

SIGNED_OUT_MESSAGES = {
    "idle": "You were signed out after a period of inactivity.",
    "absolute": "Your session reached its maximum length. Sign in again.",
    "ended": "This session was ended. Sign in again.",
    "credentials_changed": "Your password or second factors changed. Sign in again.",
    "deactivated": "This account was deactivated.",
}
INVALID_LINK = "This link is not valid: it is unknown, already used or expired. Ask for a new one."


def _user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return str(settings.LOGIN_REDIRECT_URL)


def _errors(form_or_exc: Any) -> list[str]:
    if isinstance(form_or_exc, ValidationError):
        return list(form_or_exc.messages)
    return [str(form_or_exc)]


def service_errors(
    form: Any, exc: ValidationError, *, fields: Mapping[str, str] | None = None
) -> list[str]:
    """A service's ``ValidationError`` shown where it belongs, each message once: errors
    keyed by a field the form has go beside that field (``fields`` maps a service's
    argument to the form field that holds it, ``{"password": "new_password1"}``); the
    others (whole-form ones, fields the form does not show) are returned, for the page's
    error list."""
    if not hasattr(exc, "error_dict"):
        return list(dict.fromkeys(exc.messages))
    rest: list[str] = []
    for field, errors in exc.error_dict.items():
        name = (fields or {}).get(field, field)
        if name in form.fields:
            form.add_error(name, errors)
        else:
            rest.extend(message for error in errors for message in error.messages)
    return list(dict.fromkeys(rest))


def raise_404() -> NoReturn:
    raise Http404("Not found.")
