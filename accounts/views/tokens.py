"""API tokens: creating and revoking one's own."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import forms, selectors, services
from accounts.roles import MANAGE_USERS
from accounts.views._common import _user, raise_404


@never_cache
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = forms.TokenCreateForm(
        request.POST or None,
        initial={"days": settings.SAFECHAT_API_TOKEN_DAYS},
        can_provision=user.has_perm(MANAGE_USERS),
    )
    secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _token, secret = services.api_token_create(
                    actor=user, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
                    days=form.cleaned_data["days"], request=request,
                )  # fmt: skip
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                status = 400
        else:
            status = 400
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": selectors.api_tokens_for(user=user), "secret": secret},
        status=status,
    )


@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.api_token_get(user=_user(request), token_id=token_id)
    if token is None:
        raise_404()
    services.api_token_revoke(actor=_user(request), token=token, request=request)
    messages.success(request, "Token revoked.")
    return redirect("accounts:tokens")
