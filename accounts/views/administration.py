"""User administration, for security administrators."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import forms, selectors, services
from accounts.models import User
from accounts.roles import Role
from accounts.views._common import _user, raise_404


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
