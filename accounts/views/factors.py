"""Enrolment and second factors: TOTP enrolment, passkeys, backup codes, renames and removals."""

from __future__ import annotations

from typing import Any

import segno
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import forms, selectors, services
from accounts.factor_ids import persistent_id_names_a_device
from accounts.session_policy import recently_reverified
from accounts.views._common import _user, raise_404


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """Add an authenticator app or a passkey; forced before anything else at first sign-in."""
    user = _user(request)
    first = not selectors.user_has_factor(user=user)
    if not services.factor_change_allowed(request=request, user=user):
        return HttpResponseRedirect(
            reverse("accounts:reverify") + "?next=" + reverse("accounts:enrol")
        )
    device = services.totp_enrolment_device(user=user)
    form = forms.TotpConfirmForm(request.POST or None)
    error, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.totp_enrol_confirm(
                    request=request,
                    user=user,
                    device=device,
                    code=form.cleaned_data["code"],
                    name=form.cleaned_data["name"],
                )
            except services.SignInError as exc:
                error, status = exc.message, 400
            except services.ReverificationRequired as exc:
                error, status = str(exc), 403
            else:
                messages.success(request, "Authenticator app added.")
                if first:
                    messages.info(request, "Now print or save backup codes in case you lose it.")
                return redirect("accounts:factors")
        else:
            error, status = "Enter the name and the 6-digit code.", 400
    url = device.config_url
    return render(
        request,
        "accounts/enrol.html",
        {
            "form": form,
            "error": error,
            "first": first,
            "qr": segno.make(url, error="m").svg_data_uri(scale=5, border=2),
            "secret": _base32_secret(device),
        },
        status=status,
    )


def _base32_secret(device: TOTPDevice) -> str:
    import base64

    raw = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@never_cache
def factors(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "accounts/factors.html",
        {
            "factors": [
                (d, selectors.factor_kind_label(d)) for d in selectors.user_factors(user=user)
            ],
            "backup_remaining": selectors.backup_codes_remaining(user=user),
            "reverified": recently_reverified(request.session),
        },
    )


def _factor_or_404(request: HttpRequest, persistent_id: str) -> Any:
    if not persistent_id_names_a_device(persistent_id):
        raise_404()
    device = selectors.user_factor_get(user=_user(request), persistent_id=persistent_id)
    if device is None:
        raise_404()
    return device


def _factor_change(request: HttpRequest, change: Any) -> HttpResponse:
    try:
        change()
    except services.ReverificationRequired:
        return HttpResponseRedirect(reverse("accounts:reverify"))
    except services.LastFactor as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("accounts:factors"), status=303)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(reverse("accounts:factors"), status=303)
    return redirect("accounts:factors")


@require_POST
def factor_rename(request: HttpRequest, persistent_id: str) -> HttpResponse:
    device = _factor_or_404(request, persistent_id)
    form = forms.RenameForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a name.")
        return redirect("accounts:factors")
    return _factor_change(
        request,
        lambda: services.factor_rename(
            request=request, user=_user(request), device=device, name=form.cleaned_data["name"]
        ),
    )


@require_POST
def factor_remove(request: HttpRequest, persistent_id: str) -> HttpResponse:
    device = _factor_or_404(request, persistent_id)
    return _factor_change(
        request, lambda: services.factor_remove(request=request, user=_user(request), device=device)
    )


@never_cache
@require_POST
def backup_codes(request: HttpRequest) -> HttpResponse:
    try:
        codes = services.backup_codes_generate(request=request, user=_user(request))
    except services.ReverificationRequired:
        return HttpResponseRedirect(reverse("accounts:reverify"))
    return render(request, "accounts/backup_codes.html", {"codes": codes})


@never_cache
def passkey_add(request: HttpRequest) -> HttpResponse:
    if not services.factor_change_allowed(request=request, user=_user(request)):
        return HttpResponseRedirect(reverse("accounts:reverify") + "?next=" + request.path)
    return render(request, "accounts/passkey_add.html")
