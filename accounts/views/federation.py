"""Signing in through an identity provider: leaving for it, coming back (OpenID Connect and
SAML 2.0), and SafeChat's SAML metadata.

Thin: ``accounts.oidc`` and ``accounts.saml`` run the protocols and their checks,
``accounts.services`` decides and records. Every refusal is a page that says what
happened, with a 4xx status (502 when an OpenID Connect provider cannot be reached, 429
past the rate limit), and nothing is created.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts import oidc, saml, selectors, services
from accounts.oidc import OidcRefused
from accounts.saml import SamlRefused
from accounts.services import FederatedSignIn
from accounts.sso import FederatedRefused, OidcProvider
from accounts.views._common import _next_url
from safechat.actions import Refused

THROTTLED = "Too many sign-in attempts from your address. Wait a moment, then start again."


def _refused_page(request: HttpRequest, *, message: str, status: int) -> HttpResponse:
    return render(request, "accounts/sso_refused.html", {"message": message}, status=status)


def _protocol_refused(
    request: HttpRequest, provider_key: str, refused: FederatedRefused
) -> HttpResponse:
    services.federated_sign_in_refused(
        request=request, provider_key=provider_key, reason=refused.reason, detail=refused.detail
    )
    return _refused_page(request, message=refused.message, status=refused.status)


def _throttled(request: HttpRequest, provider_key: str) -> HttpResponse | None:
    """429 once the client address has sent too many answers (nothing else is checked)."""
    retry_after = services.federated_attempt_count(request=request, provider_key=provider_key)
    if retry_after is None:
        return None
    response = _refused_page(request, message=THROTTLED, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _signed_in(request: HttpRequest, result: FederatedSignIn, next_url: str) -> HttpResponse:
    """Where a federated sign-in goes: on, if complete; else the second factor (or
    enrolment, for an account without one)."""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = str(settings.LOGIN_REDIRECT_URL)
    if result.verified:
        return HttpResponseRedirect(next_url)
    target = "accounts:second-factor"
    if not selectors.user_has_factor(user=result.user):
        target = "accounts:enrol"
    return HttpResponseRedirect(f"{reverse(target)}?next={next_url}")


# --- OpenID Connect -------------------------------------------------------------------


def _provider_or_refusal(request: HttpRequest, provider_key: str) -> OidcProvider | HttpResponse:
    provider = oidc.provider_get(provider_key)
    if provider is None:
        return _protocol_refused(
            request, provider_key, OidcRefused("unknown_provider", detail="", status=404)
        )
    return provider


@never_cache
@require_GET
def sso_start(request: HttpRequest, provider_key: str) -> HttpResponse:
    """Leave for the provider (a link, not a form: the page's form-action policy would
    stop a form's redirect to another origin)."""
    provider = _provider_or_refusal(request, provider_key)
    if isinstance(provider, HttpResponse):
        return provider
    redirect_uri = request.build_absolute_uri(reverse("accounts:sso-callback", args=[provider.key]))
    try:
        url = oidc.authorization_redirect_url(
            request=request, provider=provider, redirect_uri=redirect_uri,
            next_url=_next_url(request),
        )  # fmt: skip
    except OidcRefused as refused:
        return _protocol_refused(request, provider.key, refused)
    return HttpResponseRedirect(url)


@never_cache
@require_GET
def sso_callback(request: HttpRequest, provider_key: str) -> HttpResponse:
    """Come back from the provider: check its answer, sign in the linked account, then the
    second factor (unless the provider is trusted for it and asserted several factors)."""
    throttled = _throttled(request, provider_key)
    if throttled is not None:
        return throttled
    provider = _provider_or_refusal(request, provider_key)
    if isinstance(provider, HttpResponse):
        return provider
    try:
        identity, next_url = oidc.identity_from_callback(request=request, provider=provider)
    except OidcRefused as refused:
        return _protocol_refused(request, provider.key, refused)
    try:
        result = services.federated_sign_in(request=request, identity=identity)
    except Refused as refused:
        return _refused_page(request, message=refused.message, status=403)
    oidc.logout_hint_keep(request=request, identity=identity)
    return _signed_in(request, result, next_url)


def _logout_answer(status: int, *, error: str = "", description: str = "") -> JsonResponse:
    """The answer to a back-channel logout (Back-Channel Logout 1.0, 2.8): 200 with an
    empty object, or the status with an OAuth 2.0 error object (RFC 6749, 5.2); never
    cached."""
    body = {"error": error, "error_description": description} if error else {}
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt  # the provider posts from its own server, with no cookie and no session
@require_POST
def oidc_backchannel_logout(request: HttpRequest, provider_key: str) -> HttpResponse:
    """OpenID Connect Back-Channel Logout 1.0: the provider posts a signed Logout Token
    (``logout_token``); the sessions it names end, with their live sockets. 200 when done
    (also when no session matched), 400 for a token that fails a check, 404 for an
    unknown provider, 429 past ``SAFECHAT_SSO_RATE_LIMIT``; every refusal audited."""
    retry_after = services.federated_attempt_count(request=request, provider_key=provider_key)
    if retry_after is not None:
        response = _logout_answer(429, error="temporarily_unavailable", description=THROTTLED)
        response["Retry-After"] = str(retry_after)
        return response
    provider = oidc.provider_get(provider_key)
    refused: OidcRefused | None = None
    if provider is None:
        refused = OidcRefused("unknown_provider", status=404)
    else:
        try:
            order = oidc.logout_token_read(
                provider=provider, token=request.POST.get("logout_token", "")
            )
        except OidcRefused as exc:
            refused = exc
    if refused is not None:
        services.federated_sign_in_refused(
            request=request, provider_key=provider_key, reason=refused.reason,
            detail=f"back-channel logout: {refused.detail}",
        )  # fmt: skip
        error = "invalid_request" if refused.status == 400 else "not_found"
        if refused.status >= 500:
            error = "temporarily_unavailable"
        return _logout_answer(refused.status, error=error, description=refused.message)
    try:
        services.federated_logout(
            request=request, identity=order.identity, session_indexes=order.session_indexes
        )
    except Refused as exc:  # a jti used before
        description = oidc.REASONS.get(exc.reason or "", exc.message)
        return _logout_answer(400, error="invalid_request", description=description)
    return _logout_answer(200)


# --- SAML 2.0 -------------------------------------------------------------------------


def _flows_stored(response: HttpResponse, flows: dict[str, saml.Flow]) -> HttpResponse:
    """Keep this browser's SAML flows in their cookie (or drop it when none is left).

    ``SameSite=None`` because the IdP's answer is a cross-site POST (the session cookie,
    ``Lax``, does not come with it); ``Secure``, ``HttpOnly``, only for ``/accounts/saml/``.
    """
    if flows:
        response.set_cookie(
            saml.FLOW_COOKIE,
            saml.flows_cookie_value(flows),
            max_age=settings.SAFECHAT_SAML_FLOW_SECONDS,
            path=saml.FLOW_COOKIE_PATH,
            secure=True,
            httponly=True,
            samesite="None",
        )
    else:
        response.delete_cookie(saml.FLOW_COOKIE, path=saml.FLOW_COOKIE_PATH, samesite="None")
    return response


@never_cache
@require_GET
def saml_start(request: HttpRequest, provider_key: str) -> HttpResponse:
    """Leave for the IdP with a signed AuthnRequest (HTTP-Redirect binding)."""
    idp = saml.identity_provider_get(provider_key)
    if idp is None:
        return _protocol_refused(request, provider_key, SamlRefused("unknown_provider", status=404))
    flows = saml.flows_read(request)
    try:
        url = saml.authn_request_url(idp=idp, flows=flows, next_url=_next_url(request))
    except SamlRefused as refused:
        return _protocol_refused(request, idp.key, refused)
    return _flows_stored(HttpResponseRedirect(url), flows)


@csrf_exempt  # the IdP's POST is cross-site by design; the flow cookie binds it to a browser
@never_cache
@require_POST
def saml_acs(request: HttpRequest, provider_key: str) -> HttpResponse:
    """The assertion consumer service: check the IdP's response, sign in the linked
    account, then the second factor (unless the IdP is trusted for it and asserted
    several factors)."""
    throttled = _throttled(request, provider_key)
    if throttled is not None:
        return throttled
    idp = saml.identity_provider_get(provider_key)
    if idp is None:
        return _protocol_refused(request, provider_key, SamlRefused("unknown_provider", status=404))
    flows = saml.flows_read(request)
    try:
        identity, next_url = saml.identity_from_response(request=request, idp=idp, flows=flows)
    except SamlRefused as refused:
        return _flows_stored(_protocol_refused(request, idp.key, refused), flows)
    try:
        result = services.federated_sign_in(request=request, identity=identity)
    except Refused as refused:
        page = _refused_page(request, message=refused.message, status=403)
        return _flows_stored(page, flows)
    saml.logout_hint_keep(request=request, identity=identity)
    return _flows_stored(_signed_in(request, result, next_url), flows)


@never_cache
@require_GET
def saml_slo(request: HttpRequest, provider_key: str) -> HttpResponse:
    """The IdP's single logout (HTTP-Redirect): end the sessions its signed LogoutRequest
    names, then answer it with a signed LogoutResponse."""
    throttled = _throttled(request, provider_key)
    if throttled is not None:
        return throttled
    idp = saml.identity_provider_get(provider_key)
    if idp is None:
        return _protocol_refused(request, provider_key, SamlRefused("unknown_provider", status=404))
    if "SAMLResponse" in request.GET and "SAMLRequest" not in request.GET:
        # The IdP's answer to a logout SafeChat started: SafeChat's session ended before
        # the browser left, so the answer changes nothing and is not read.
        return redirect("accounts:sign-in")
    try:
        order = saml.logout_request_read(request=request, idp=idp)
    except SamlRefused as refused:
        return _protocol_refused(request, idp.key, refused)
    try:
        services.federated_logout(
            request=request, identity=order.identity, session_indexes=order.session_indexes
        )
    except Refused as refused:
        return _refused_page(request, message=refused.message, status=403)
    return HttpResponseRedirect(saml.logout_response_url(idp=idp, order=order))


@never_cache
@require_GET
def saml_metadata(request: HttpRequest) -> HttpResponse:
    """SafeChat's SAML service provider metadata, for the IdPs' administrators."""
    try:
        document = saml.sp_metadata_xml()
    except SamlRefused as refused:
        return _refused_page(request, message=refused.message, status=refused.status)
    return HttpResponse(document, content_type="application/samlmetadata+xml")
