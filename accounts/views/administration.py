"""User administration, for security administrators."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import forms, selectors, services
from accounts.models import User
from accounts.providers import federated_providers
from accounts.roles import MANAGE_USERS, ROLE_CHOICES, Role
from accounts.views._common import _user, raise_404
from audit.actions import AuditAction


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
            "invitations": selectors.invitations_pending(actor=actor),
            "lockouts": selectors.lockouts_active(actor=actor),
            "lift_form": forms.LockoutLiftForm(),
            "roles": ROLE_CHOICES,
            "link_form": _link_form(),
            "identities": selectors.federated_identities() if federated_providers() else [],
        },
        status=status,
    )


AdminAction = Callable[[User, User, HttpRequest, forms.RoleForm], object]


class _Power(NamedTuple):
    """What an action on the users page needs: its service, and the permission that
    service checks (asked first, so an unknown id is answered like a known one)."""

    run: AdminAction
    permission: str
    operation: str
    refusal: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED


ADMIN_ACTIONS: dict[str, _Power] = {
    "deactivate": _Power(
        lambda actor, user, request, form: services.user_deactivate(
            actor=actor, user=user, request=request
        ),
        MANAGE_USERS,
        "account.deactivate",
    ),
    "reactivate": _Power(
        lambda actor, user, request, form: services.user_reactivate(
            actor=actor, user=user, request=request
        ),
        MANAGE_USERS,
        "account.reactivate",
    ),
    "reset-factors": _Power(
        lambda actor, user, request, form: services.factors_reset(
            actor=actor, user=user, request=request
        ),
        "accounts.manage_factors",
        "factor.reset",
    ),
    "end-sessions": _Power(
        lambda actor, user, request, form: services.session_end_all(
            actor=actor, user=user, reason="ended_by_admin", request=request
        ),
        "accounts.manage_sessions",
        "session.end_all",
    ),
    "reset-password": _Power(
        lambda actor, user, request, form: services.password_reset_by_admin(
            actor=actor, user=user, request=request
        ),
        MANAGE_USERS,
        "password.reset",
    ),
    "grant-role": _Power(
        lambda actor, user, request, form: services.role_grant(
            actor=actor, user=user, role=Role(form.cleaned_data["role"]), request=request
        ),
        MANAGE_USERS,
        "role.grant",
        AuditAction.ACCOUNT_ROLE_REFUSED,
    ),
    "revoke-role": _Power(
        lambda actor, user, request, form: services.role_revoke(
            actor=actor, user=user, role=Role(form.cleaned_data["role"]), request=request
        ),
        MANAGE_USERS,
        "role.revoke",
        AuditAction.ACCOUNT_ROLE_REFUSED,
    ),
}


@require_POST
def admin_user_action(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    actor = _user(request)
    power = ADMIN_ACTIONS.get(action)
    if power is None:
        raise_404()
    # Refused (403, audited) before the id is looked up: the same answer for every id.
    target = services.user_admin_target(
        actor=actor, user_id=user_id, permission=power.permission, operation=power.operation,
        action=power.refusal, request=request,
    )  # fmt: skip
    if target is None:
        raise_404()
    form = forms.RoleForm(request.POST)
    if action.endswith("-role") and not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("accounts:admin-users")
    result = power.run(actor, target, request, form)  # PermissionDenied: 403
    messages.success(request, "Done.")
    if action.endswith("-role") and isinstance(result, dict) and result:
        messages.warning(
            request,
            f"{len(result)} room(s) of this person now violate an information barrier: "
            "remove the members concerned (admin, Memberships).",
        )
    return redirect("accounts:admin-users")


@require_POST
def admin_invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """Withdraw a pending invitation (``services.invitation_revoke``: security admins; a
    refusal is a 403, audited, the same for every id)."""
    invitation = selectors.invitation_for_revoke(invitation_id=invitation_id)
    revoked = services.invitation_revoke(
        actor=_user(request), invitation=invitation, request=request
    )
    if revoked and invitation is not None:  # the service answers None with a 404
        messages.success(
            request, f"The invitation of {invitation.email} is revoked: its link creates nothing."
        )
    else:
        messages.info(request, "That invitation was accepted, revoked or expired already.")
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


def _link_form(data: object = None) -> forms.IdentityLinkForm:
    return forms.IdentityLinkForm(data, providers=[(p.key, p.name) for p in federated_providers()])


@require_POST
def admin_identity_link(request: HttpRequest) -> HttpResponse:
    """Link an account to an identity at a configured provider (docs/sso.md)."""
    actor = _user(request)
    if not actor.has_perm(MANAGE_USERS):
        raise PermissionDenied
    form = _link_form(request.POST)
    if not form.is_valid():
        messages.error(request, "Name a person, a provider and the identity's subject.")
        return redirect("accounts:admin-users")
    target = selectors.person_get_by_username(username=form.cleaned_data["username"])
    if target is None:
        messages.error(request, "There is no such person.")
        return redirect("accounts:admin-users")
    services.federated_identity_link(
        actor=actor, user=target, provider_key=form.cleaned_data["provider"],
        subject=form.cleaned_data["subject"], request=request,
    )  # fmt: skip
    # A refusal (PermissionDenied, audited by the service) is answered 403.
    messages.success(request, "Linked.")
    return redirect("accounts:admin-users")


@require_POST
def admin_identity_unlink(request: HttpRequest, identity_id: int) -> HttpResponse:
    """Remove a link; the sessions it verified end."""
    actor = _user(request)
    if not actor.has_perm(MANAGE_USERS):
        raise PermissionDenied
    if not services.federated_identity_unlink(
        actor=actor, identity_id=identity_id, request=request
    ):
        raise_404()
    messages.success(request, "Unlinked.")
    return redirect("accounts:admin-users")
