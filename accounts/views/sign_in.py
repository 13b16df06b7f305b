"""Signing in and out: the password step, the second factor, re-verification."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import forms, oidc, saml, selectors, services
from accounts.models import User
from accounts.providers import federated_providers
from accounts.session_policy import SESSION_SIGNED_OUT_REASON, request_verified
from accounts.views._common import SIGNED_OUT_MESSAGES, _next_url, _user


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    reason = request.session.pop(SESSION_SIGNED_OUT_REASON, None)
    form = forms.SignInForm(request.POST or None)
    status = 200
    error = SIGNED_OUT_MESSAGES.get(reason or "")
    if request.method == "POST":
        if form.is_valid():
            try:
                services.sign_in_password(
                    request=request,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                )
            except services.SignInError as exc:
                error, status = exc.message, (429 if exc.locked else 400)
            else:
                target = "accounts:second-factor"
                if not selectors.user_has_factor(user=_user(request)):
                    target = "accounts:enrol"
                query = f"?next={_next_url(request)}"
                return HttpResponseRedirect(reverse(target) + query)
        else:
            error, status = "Enter your username and password.", 400
    return render(
        request,
        "accounts/sign_in.html",
        {
            "form": form,
            "error": error,
            "next": _next_url(request),
            "sso_providers": federated_providers(),
        },
        status=status,
    )


def _code_choices(user: User) -> list[tuple[str, str]]:
    choices = []
    for device in selectors.user_factors(user=user):
        kind = selectors.factor_kind(device)
        if kind == "totp":
            choices.append((device.persistent_id, f"{device.name} (authenticator app)"))
        elif kind == "backup_codes":
            choices.append((device.persistent_id, "Backup code"))
    return choices


def _verify_page(
    request: HttpRequest, *, template: str, success_url: str, heading: str
) -> HttpResponse:
    user = _user(request)
    choices = _code_choices(user)
    form = forms.CodeForm(request.POST or None, choices=choices)
    error, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.second_factor_verify(
                    request=request,
                    user=user,
                    device_id=form.cleaned_data["device"],
                    code=form.cleaned_data["code"],
                )
            except services.SignInError as exc:
                error, status = exc.message, (429 if exc.locked else 400)
            else:
                return HttpResponseRedirect(success_url)
        else:
            error, status = services.auth.CODE_FAILURE, 400
            services.second_factor_failed(
                request=request, user=user, device=None, reason="malformed"
            )
    has_passkey = any(
        selectors.factor_kind(d) == "passkey" for d in selectors.user_factors(user=user)
    )
    return render(
        request,
        template,
        {
            "form": form,
            "error": error,
            "has_codes": bool(choices),
            "has_passkey": has_passkey,
            "next": success_url,
            "heading": heading,
        },
        status=status,
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    if request_verified(request):
        return HttpResponseRedirect(_next_url(request))
    if not selectors.user_has_factor(user=_user(request)):
        return redirect("accounts:enrol")
    return _verify_page(
        request,
        template="accounts/second_factor.html",
        success_url=_next_url(request),
        heading="Second factor",
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def reverify(request: HttpRequest) -> HttpResponse:
    return _verify_page(
        request,
        template="accounts/second_factor.html",
        success_url=_next_url(request) if "next" in request.GET else reverse("accounts:factors"),
        heading="Confirm it is you",
    )


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End this session; after a sign-in through an OpenID Connect provider that offers
    RP-Initiated Logout, or a SAML IdP with single logout, send the browser on to end the
    provider's session too (docs/sso.md "Signing out of the provider too"), which sends
    it back here."""
    hint = oidc.logout_hint_take(request)
    saml_hint = saml.logout_hint_take(request)
    provider = hint["provider"] if hint else saml_hint["provider"] if saml_hint else ""
    services.sign_out(request=request, provider_logout=provider)
    url = ""
    if hint is not None:
        url = oidc.end_session_url(
            hint=hint,
            post_logout_redirect_uri=request.build_absolute_uri(reverse("accounts:sign-in")),
        )
    elif saml_hint is not None:
        url = saml.logout_request_url(hint=saml_hint)
    if url:
        return HttpResponseRedirect(url)
    return redirect("accounts:sign-in")
