"""Portal pages of accounts. Thin: parse the form, call a service, render or redirect."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NoReturn

import segno
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import forms, selectors, services
from accounts.models import User
from accounts.roles import MANAGE_USERS, Role
from accounts.session_policy import SESSION_SIGNED_OUT_REASON, recently_reverified, request_verified

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


# --- Sign-in ------------------------------------------------------------------
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
        {"form": form, "error": error, "next": _next_url(request)},
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
    services.sign_out(request=request)
    return redirect("accounts:sign-in")


# --- Enrolment and factors -----------------------------------------------------
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
            "factors": [(d, selectors.factor_kind(d)) for d in selectors.user_factors(user=user)],
            "backup_remaining": selectors.backup_codes_remaining(user=user),
            "reverified": recently_reverified(request.session),
        },
    )


def _factor_or_404(request: HttpRequest, persistent_id: str) -> Any:
    device = selectors.user_factor_get(user=_user(request), persistent_id=persistent_id)
    if device is None:
        raise_404()
    return device


def raise_404() -> NoReturn:
    raise Http404("Not found.")


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


# --- Home, sessions, password --------------------------------------------------
@never_cache
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "accounts/home.html",
        {
            "roles": selectors.user_roles(user=user),
            "is_security_admin": user.has_perm(MANAGE_USERS),
        },
    )


@never_cache
def sessions(request: HttpRequest) -> HttpResponse:
    from accounts.session_policy import session_key_hash

    key = request.session.session_key or ""
    return render(
        request,
        "accounts/sessions.html",
        {
            "sessions": selectors.user_sessions_active(user=_user(request)),
            "current_hash": session_key_hash(key) if key else "",
        },
    )


@require_POST
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    row = selectors.user_session_get(user=_user(request), session_id=session_id)
    if row is None:
        raise_404()
    from accounts.session_policy import session_key_hash

    current = request.session.session_key
    if current and row.key_hash == session_key_hash(current):
        services.sign_out(request=request)
        return redirect("accounts:sign-in")
    services.session_end(actor=_user(request), session=row, reason="ended_by_user", request=request)
    messages.success(request, "The session was ended.")
    return redirect("accounts:sessions")


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


# --- First boot and invitations ------------------------------------------------
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
                errors, status = _errors(exc), 400
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
            request=request, token=token, username=data["username"], password=data["new_password1"]
        ),
        refuse=lambda: services.invitation_accept(
            request=request, token=token, username="", password=""
        ),
        template="accounts/invitation.html",
        context={"invitation": invite},
    )


# --- Tokens -------------------------------------------------------------------
@never_cache
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = forms.TokenCreateForm(
        request.POST or None, initial={"days": settings.SAFECHAT_API_TOKEN_DAYS}
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


# --- User administration (security admins) -------------------------------------
@never_cache
@require_http_methods(["GET", "POST"])
def admin_users(request: HttpRequest) -> HttpResponse:
    actor = _user(request)
    if not actor.has_perm("accounts.view_user"):
        raise PermissionDenied
    form = forms.InviteForm(request.POST or None)
    invite_link = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _invitation, token = services.invitation_create(
                actor=actor, email=form.cleaned_data["email"], role=Role(form.cleaned_data["role"]),
                request=request,
            )  # fmt: skip
            invite_link = request.build_absolute_uri(reverse("accounts:invitation", args=[token]))
            messages.success(request, "Invitation sent.")
        else:
            status = 400
    users = [
        (u, selectors.user_roles(user=u), len(selectors.user_factors(user=u)))
        for u in selectors.users_for_admin(actor=actor)
    ]
    return render(
        request,
        "accounts/admin_users.html",
        {
            "users": users,
            "form": form,
            "invite_link": invite_link,
            "lockouts": selectors.lockouts_active(actor=actor),
            "lift_form": forms.LockoutLiftForm(),
            "roles": [r.value for r in Role],
        },
        status=status,
    )


AdminAction = Callable[[User, User, HttpRequest, forms.RoleForm], object]
ADMIN_ACTIONS: dict[str, AdminAction] = {
    "deactivate": lambda actor, user, request, form: services.user_deactivate(
        actor=actor, user=user, request=request
    ),
    "reset-factors": lambda actor, user, request, form: services.factors_reset(
        actor=actor, user=user, request=request
    ),
    "end-sessions": lambda actor, user, request, form: services.session_end_all(
        actor=actor, user=user, reason="ended_by_admin", request=request
    ),
    "reset-password": lambda actor, user, request, form: services.password_reset_by_admin(
        actor=actor, user=user, request=request
    ),
    "grant-role": lambda actor, user, request, form: services.role_grant(
        actor=actor, user=user, role=Role(form.cleaned_data["role"]), request=request
    ),
    "revoke-role": lambda actor, user, request, form: services.role_revoke(
        actor=actor, user=user, role=Role(form.cleaned_data["role"]), request=request
    ),
}


@require_POST
def admin_user_action(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    actor = _user(request)
    if action not in ADMIN_ACTIONS:
        raise_404()
    target = get_object_or_404(User, pk=user_id)
    form = forms.RoleForm(request.POST)
    if action.endswith("-role") and not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("accounts:admin-users")
    result = ADMIN_ACTIONS[action](actor, target, request, form)  # PermissionDenied: 403
    messages.success(request, "Done.")
    if action.endswith("-role") and isinstance(result, dict) and result:
        messages.warning(
            request,
            f"{len(result)} room(s) of this person now violate an information barrier: "
            "remove the members concerned (admin, Memberships).",
        )
    return redirect("accounts:admin-users")


@require_POST
def admin_lockout_lift(request: HttpRequest) -> HttpResponse:
    form = forms.LockoutLiftForm(request.POST)
    if not form.is_valid() or not (
        form.cleaned_data["username"] or form.cleaned_data["ip_address"]
    ):
        messages.error(request, "Name a username or an address.")
        return redirect("accounts:admin-users")
    services.lockout_lift(
        actor=_user(request),
        username=form.cleaned_data["username"] or None,
        ip_address=form.cleaned_data["ip_address"] or None,
        request=request,
    )
    messages.success(request, "Lockout lifted.")
    return redirect("accounts:admin-users")
