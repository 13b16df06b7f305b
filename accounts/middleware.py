"""Session policy and the second-factor gate, for every HTTP request.

``SecondFactorRequiredMiddleware`` closes every route to a session that has not
passed the second factor, except an explicit allow-list, so a new route is
protected by default. The WebSocket consumer applies the same session policy
(``accounts.session_policy``) on every frame and on a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse

from accounts.selectors import user_has_factor
from accounts.services.sessions import session_end_current, session_touch
from accounts.session_policy import (
    SESSION_SIGNED_OUT_REASON,
    request_verified,
    session_row_for,
    session_touch_due,
    session_verdict_of,
)
from safechat.problems import problem_response

# Reachable by anyone, signed in or not.
PUBLIC_ROUTES = frozenset(
    {
        "healthz",
        "readyz",
        "metrics",  # its own bearer token (safechat/monitoring.py)
        "favicon",
        "accounts:sign-in",
        "accounts:sso-start",
        "accounts:sso-callback",
        "accounts:oidc-backchannel-logout",
        "accounts:saml-metadata",
        "accounts:saml-start",
        "accounts:saml-acs",
        "accounts:saml-slo",
        "accounts:password-reset-request",
        "accounts:password-reset-confirm",
        "accounts:bootstrap",
        "accounts:invitation",
        # SCIM authenticates its own token on every request and takes no session.
        "scim:users",
        "scim:user",
        "scim:groups",
        "scim:group",
        "scim:resource-types",
        "scim:schemas",
        "scim:service-provider-config",
    }
)
# Reachable after the password, before the second factor.
UNVERIFIED_ROUTES = frozenset(
    {
        "accounts:second-factor",
        "accounts:sign-out",
        "otp_webauthn:credential-authentication-begin",
        "otp_webauthn:credential-authentication-complete",
        "otp_webauthn:js-i18n-catalog",
    }
)
# Reachable before the second factor only while the user has no factor at all.
ENROLMENT_ROUTES = frozenset(
    {
        "accounts:enrol",
        "otp_webauthn:credential-registration-begin",
        "otp_webauthn:credential-registration-complete",
    }
)
API_PREFIX = "/api/"
API_CHALLENGE = 'Bearer realm="api"'

Handler = Callable[[HttpRequest], HttpResponse]


def route_name(request: HttpRequest) -> str | None:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    return str(match.view_name)


def _wants_json(request: HttpRequest) -> bool:
    if request.path_info.startswith(API_PREFIX) or "/webauthn/" in request.path_info:
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _by_the_person(request: HttpRequest) -> bool:
    """Whether a request is the person's activity: the portal marks what it fetches on its
    own (``X-SafeChat-Background``), which must not keep an unattended session alive."""
    return request.headers.get("X-SafeChat-Background") != "1"


class SessionPolicyMiddleware:
    """Sign out a session the policy refuses (ended elsewhere, idle, past its absolute
    limit, credentials changed, user deactivated); otherwise move its idle clock."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            row = session_row_for(user=request.user, session=request.session)
            verdict = session_verdict_of(row, require_factor=False)
            if verdict.reason is not None:
                session_end_current(request=request, reason=verdict.reason)
                request.session[SESSION_SIGNED_OUT_REASON] = verdict.reason
            elif row is not None and _by_the_person(request) and session_touch_due(row):
                session_touch(session_id=row.pk)
        return self.get_response(request)


class SecondFactorRequiredMiddleware:
    """Deny by default: only the allow-lists above are open without a verified second factor."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._allowed(request):
            return self.get_response(request)
        if not request.user.is_authenticated:
            if _wants_json(request):
                # The same challenge DRF sends (RFC 9110, section 11.6.1): a token is
                # the API's way in.
                return problem_response(
                    status=401,
                    code="not_authenticated",
                    detail="Authentication required.",
                    request=request,
                    headers={"WWW-Authenticate": API_CHALLENGE},
                )
            query = urlencode({"next": request.get_full_path()})
            return HttpResponseRedirect(f"{settings.LOGIN_URL}?{query}")
        if _wants_json(request):
            return problem_response(
                status=403,
                code="second_factor_required",
                detail="Second factor required.",
                request=request,
            )
        return HttpResponseRedirect(self._second_factor_url(request))

    def _allowed(self, request: HttpRequest) -> bool:
        if request.path_info.startswith(settings.STATIC_URL):
            return True
        name = route_name(request)
        if name in PUBLIC_ROUTES:
            return True
        user = request.user
        if not user.is_authenticated:
            # Token-authenticated API calls carry no session: DRF authenticates them
            # and its default permissions refuse anything else. Any ``Authorization``
            # header goes there, a malformed one too: the token scheme refuses it,
            # audited and throttled like a wrong token.
            authorization = request.headers.get("Authorization", "")
            return request.path_info.startswith(API_PREFIX) and bool(authorization.strip())
        if request_verified(request):
            return True
        if name in UNVERIFIED_ROUTES:
            return True
        return name in ENROLMENT_ROUTES and not user_has_factor(user=user)  # type: ignore[arg-type,unused-ignore]

    @staticmethod
    def _second_factor_url(request: HttpRequest) -> str:
        if user_has_factor(user=request.user):  # type: ignore[arg-type]
            return reverse("accounts:second-factor")
        return reverse("accounts:enrol")
