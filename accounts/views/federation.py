"""Signing in through an identity provider (OpenID Connect): leaving for it, coming back.

Thin: ``accounts.oidc`` runs the protocol and its checks, ``accounts.services`` decides
and records. Every refusal is a page that says what happened, with a 4xx status (502 when
the provider cannot be reached), and nothing is created.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts import oidc, selectors, services
from accounts.oidc import OidcRefused
from accounts.sso import OidcProvider
from accounts.views._common import _next_url
from safechat.actions import Refused


def _refused_page(request: HttpRequest, *, message: str, status: int) -> HttpResponse:
    return render(request, "accounts/sso_refused.html", {"message": message}, status=status)


def _protocol_refused(
    request: HttpRequest, provider_key: str, refused: OidcRefused
) -> HttpResponse:
    services.federated_sign_in_refused(
        request=request, provider_key=provider_key, reason=refused.reason, detail=refused.detail
    )
    return _refused_page(request, message=refused.message, status=refused.status)


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
