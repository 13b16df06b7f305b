"""First boot and invitations: creating an account from a one-time link."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import forms, selectors, services
from accounts.views._common import INVALID_LINK, service_errors

# The services' arguments that the forms hold under another name.
SERVICE_FIELDS = {"password": "new_password1"}


def _account_create_page(
    request: HttpRequest,
    *,
    valid: bool,
    form: Any,
    create: Any,
    refuse: Any,
    template: str,
    context: dict[str, Any],
) -> HttpResponse:
    if not valid:
        with contextlib.suppress(services.InvalidLink):
            refuse()
        return render(request, "accounts/invalid_link.html", {"message": INVALID_LINK}, status=404)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                create(form.cleaned_data)
            except services.InvalidLink:
                return render(
                    request, "accounts/invalid_link.html", {"message": INVALID_LINK}, status=404
                )
            except ValidationError as exc:
                errors, status = service_errors(form, exc, fields=SERVICE_FIELDS), 400
            else:
                return redirect("accounts:enrol")
        else:
            status = 400
    return render(request, template, {"form": form, "errors": errors, **context}, status=status)


@never_cache
@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def bootstrap(request: HttpRequest, token: str) -> HttpResponse:
    return _account_create_page(
        request,
        valid=selectors.bootstrap_token_valid(token=token),
        form=forms.BootstrapForm(request.POST or None),
        create=lambda data: services.bootstrap_admin_create(
            request=request,
            token=token,
            username=data["username"],
            email=data["email"],
            password=data["new_password1"],
            first_name=data["first_name"],
            last_name=data["last_name"],
        ),
        refuse=lambda: services.bootstrap_admin_create(
            request=request, token=token, username="", email="", password=""
        ),
        template="accounts/bootstrap.html",
        context={},
    )


@never_cache
@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    invite = selectors.invitation_valid(token=token)
    return _account_create_page(
        request,
        valid=invite is not None,
        form=forms.AccountCreateForm(request.POST or None),
        create=lambda data: services.invitation_accept(
            request=request,
            token=token,
            username=data["username"],
            password=data["new_password1"],
            first_name=data["first_name"],
            last_name=data["last_name"],
        ),
        refuse=lambda: services.invitation_accept(
            request=request, token=token, username="", password=""
        ),
        template="accounts/invitation.html",
        context={"invitation": invite},
    )
