"""Roles and information-barrier groups from an identity provider's groups (docs/sso.md,
"Roles and groups from the provider"): the configured mapping, applied at each sign-in
through that provider, inside the sign-in's transaction."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts.hooks import room_hooks
from accounts.models import User
from accounts.roles import Role
from accounts.selectors import CHAT_READ_ONLY_ROLES
from accounts.services._common import security_admins_locked
from accounts.services.users import INCOMPATIBLE_ROLES, _invitations_lapse, _staff_sync
from accounts.sso import AssertedIdentity, mapped_access
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.locks import rows_locked


def idp_access_apply(*, user: User, identity: AssertedIdentity, request: HttpRequest) -> bool:
    """Inside the caller's transaction (the sign-in): give ``user`` the roles and barrier
    groups ``identity``'s groups map to, and take away those the mapping manages that the
    provider no longer asserts. Roles and groups the mapping does not name are never
    touched, and a provider with no mapping changes nothing. Returns whether anything
    changed.

    The rules of every role change hold, the provider being no more powerful than a
    security admin: a grant of a role incompatible with one the person keeps
    (``incompatible roles``), a role read-only on chat for a room's only acting owner
    (``sole owner``), the revocation of the last active security admin (``last security
    admin``) and a barrier group that does not exist here (``unknown group``) are held
    back, the sign-in going on. Audited once, ``account.idp_access.applied`` (no actor:
    the provider; ``provider``, what was granted, revoked, added and removed, what was
    held back and why, and the rooms that now violate a barrier), only when something
    changed or was held back. Locks: the roles' and groups' rows, the person's row,
    their rooms; the audit chain last.
    """
    access = mapped_access(identity)
    if not access.configured:
        return False
    hooks = room_hooks()
    if Role.SECURITY_ADMIN.value in access.managed_roles:
        security_admins_locked()
    groups = {
        g.name: g
        for g in Group.objects.filter(name__in=access.managed_roles | access.managed_groups)
    }
    rows_locked(Group, [g.pk for g in groups.values()])
    user = rows_locked(User, [user.pk])[0]
    hooks.rooms_lock(user)
    held = set(user.groups.values_list("name", flat=True))
    held_back: list[dict[str, str]] = []
    grant = sorted(access.roles - held)
    revoke = sorted((access.managed_roles - access.roles) & held)
    kept = (held | set(grant)) - set(revoke)
    granted: list[str] = []
    for name in grant:
        role = Role(name)
        other = INCOMPATIBLE_ROLES.get(role)
        if other is not None and other.value in kept:
            held_back.append({"role": name, "reason": "incompatible roles"})
            kept.discard(name)
            continue
        if name in CHAT_READ_ONLY_ROLES and hooks.rooms_owned_only_by(user):
            held_back.append({"role": name, "reason": "sole owner"})
            kept.discard(name)
            continue
        group, _ = Group.objects.get_or_create(name=name)
        user.groups.add(group)
        granted.append(name)
    revoked: list[str] = []
    for name in revoke:
        if name == Role.SECURITY_ADMIN.value and user.is_active:
            others = (
                User.objects.filter(groups__name=name, is_active=True).exclude(pk=user.pk).exists()
            )
            if not others:
                held_back.append({"role": name, "reason": "last security admin"})
                continue
        user.groups.remove(groups[name])
        revoked.append(name)
        if name == Role.SECURITY_ADMIN.value:
            _invitations_lapse(user=user)
    if granted or revoked:
        _staff_sync(user=user)
    added: list[str] = []
    for name in sorted(access.groups - held):
        barrier_group = groups.get(name)
        if barrier_group is None:
            held_back.append({"group": name, "reason": "unknown group"})
            continue
        user.groups.add(barrier_group)
        added.append(name)
    removed = sorted((access.managed_groups - access.groups) & held)
    if removed:
        user.groups.remove(*(groups[name] for name in removed))
    if not (granted or revoked or added or removed or held_back):
        return False
    violations = hooks.barrier_violations(user)
    audit_record(
        actor=None,  # the provider's groups decided, at this person's sign-in
        action=AuditAction.ACCOUNT_IDP_ACCESS_APPLIED,
        target=user,
        extra={
            "provider": identity.provider.key,
            "roles_granted": granted,
            "roles_revoked": revoked,
            "groups_added": added,
            "groups_removed": removed,
            "held_back": held_back,
            "rooms_in_violation": len(violations),
        },
        request=request,
    )
    return bool(granted or revoked or added or removed)
