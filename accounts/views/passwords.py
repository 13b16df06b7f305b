"""Passwords: changing one's own, and the reset by e-mailed link."""

from __future__ import annotations

import contextlib

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import forms, services
from accounts.views._common import INVALID_LINK, _errors, _user


@never_cache
@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = forms.PasswordChangeForm(request.POST or None)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.password_change(
                    request=request,
                    user=_user(request),
                    current_password=form.cleaned_data["current_password"],
                    new_password=form.cleaned_data["new_password1"],
                )
            except (ValidationError, services.PasswordRejected) as exc:
                errors, status = _errors(exc), 400
            else:
                messages.success(request, "Password changed. Your other sessions were ended.")
                return redirect("accounts:home")
        else:
            status = 400
    return render(
        request, "accounts/password_change.html", {"form": form, "errors": errors}, status=status
    )


@never_cache
@require_http_methods(["GET", "POST"])
def password_reset_request(request: HttpRequest) -> HttpResponse:
    form = forms.PasswordResetRequestForm(request.POST or None)
    sent = False
    if request.method == "POST" and form.is_valid():
        services.password_reset_request(email=form.cleaned_data["email"], request=request)
        sent = True
    return render(request, "accounts/password_reset_request.html", {"form": form, "sent": sent})


@never_cache
@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    if services.password_reset_user(uidb64=uidb64, token=token) is None:
        with contextlib.suppress(services.InvalidLink):
            services.password_reset_confirm(
                request=request, uidb64=uidb64, token=token, new_password=""
            )
        return render(request, "accounts/invalid_link.html", {"message": INVALID_LINK}, status=404)
    form = forms.PasswordResetConfirmForm(request.POST or None)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.password_reset_confirm(
                    request=request, uidb64=uidb64, token=token,
                    new_password=form.cleaned_data["new_password1"],
                )  # fmt: skip
            except ValidationError as exc:
                errors, status = _errors(exc), 400
            except services.InvalidLink:
                return render(
                    request, "accounts/invalid_link.html", {"message": INVALID_LINK}, status=404
                )
            else:
                messages.success(request, "Password set. Sign in with it and your second factor.")
                return redirect("accounts:sign-in")
        else:
            status = 400
    return render(
        request,
        "accounts/password_reset_confirm.html",
        {"form": form, "errors": errors},
        status=status,
    )
