"""Roles and information-barrier groups from an identity provider's groups (docs/sso.md,
"Roles and groups from the provider" and "SCIM Groups"): the configured mapping, applied
at each sign-in through that provider (inside the sign-in's transaction) and at each
change of a SCIM group (inside the provisioning's), by the one code path below.

The path has three steps, so that a change of many people at once keeps the lock order
(docs/architecture.md): ``_access_locks`` (the roles' and groups' rows, then the people,
then every room they are in), ``_access_change`` (the writes, no audit), then
``_access_record`` (one ``account.idp_access.applied`` per person changed or held back,
after every write: nothing is locked after the first audit append).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts.hooks import room_hooks
from accounts.models import User
from accounts.roles import Role
from accounts.selectors import CHAT_READ_ONLY_ROLES
from accounts.services._common import security_admins_locked
from accounts.services.users import INCOMPATIBLE_ROLES, _invitations_lapse, _staff_sync
from accounts.sso import AssertedIdentity, FederatedProvider, MappedAccess, groups_mapped
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.locks import rows_locked

# Who decided a change: the person's own sign-in, or a SCIM group's change.
VIA_SIGN_IN = "sign_in"
VIA_SCIM = "scim"


@dataclass
class _Locked:
    """What ``_access_locks`` locked: the mapped roles' and groups' rows by name, the
    people by id."""

    groups: dict[str, Group]
    people: dict[int, User]


@dataclass
class _Outcome:
    """What the mapping did to one person."""

    user: User
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.granted or self.revoked or self.added or self.removed)


def _access_locks(
    *,
    provider: FederatedProvider,
    user_ids: Collection[int],
    people_locked: Callable[[list[int]], Mapping[int, User]],
) -> _Locked:
    """Inside the caller's transaction, take the mapping's locks in the project's order:
    the security admins' group (if the mapping manages that role), the rows of every role
    and barrier group the mapping names, the people (``people_locked``: the users step,
    ascending; it may lock an actor with them and check its right), then every room any
    of them is in. Returns the rows."""
    access = groups_mapped(provider, ())
    if Role.SECURITY_ADMIN.value in access.managed_roles:
        security_admins_locked()
    groups = {
        g.name: g
        for g in Group.objects.filter(name__in=access.managed_roles | access.managed_groups)
    }
    rows_locked(Group, [g.pk for g in groups.values()])
    locked = people_locked(sorted(set(user_ids)))
    people = {pk: locked[pk] for pk in user_ids if pk in locked}
    room_hooks().rooms_lock_all(list(people.values()))
    return _Locked(groups=groups, people=people)


def _access_change(
    *, locked: _Locked, user: User, access: MappedAccess, actor: User | None = None
) -> _Outcome:
    """Give ``user`` (locked) the roles and barrier groups ``access`` says, and take away
    those it manages that it does not say; what a rule forbids is held back. Writes, never
    audits. With an ``actor`` (a SCIM change, made with a security admin's token), three
    rules more: a security admin's roles are not changed, and the security admin role is
    never given (both ``security admin``: what provisioning gave it could not take away);
    and the actor's own barrier groups are not changed (``self``: nobody changes their own
    groups)."""
    hooks = room_hooks()
    outcome = _Outcome(user=user)
    held = set(user.groups.values_list("name", flat=True))
    grant = sorted(access.roles - held)
    revoke = sorted((access.managed_roles - access.roles) & held)
    if actor is not None and Role.SECURITY_ADMIN.value in held and (grant or revoke):
        outcome.held_back += [{"role": n, "reason": "security admin"} for n in grant + revoke]
        grant, revoke = [], []
    if actor is not None and Role.SECURITY_ADMIN.value in grant:
        # Symmetric with the rule above: provisioning could never take the role away
        # again, so it never gives it (a security admin appoints one, on the Users page).
        grant.remove(Role.SECURITY_ADMIN.value)
        outcome.held_back.append({"role": Role.SECURITY_ADMIN.value, "reason": "security admin"})
    kept = (held | set(grant)) - set(revoke)
    for name in grant:
        role = Role(name)
        other = INCOMPATIBLE_ROLES.get(role)
        if other is not None and other.value in kept:
            outcome.held_back.append({"role": name, "reason": "incompatible roles"})
            kept.discard(name)
            continue
        if name in CHAT_READ_ONLY_ROLES and hooks.rooms_owned_only_by(user):
            outcome.held_back.append({"role": name, "reason": "sole owner"})
            kept.discard(name)
            continue
        group, _ = Group.objects.get_or_create(name=name)
        user.groups.add(group)
        outcome.granted.append(name)
    for name in revoke:
        if name == Role.SECURITY_ADMIN.value and user.is_active:
            others = (
                User.objects.filter(groups__name=name, is_active=True).exclude(pk=user.pk).exists()
            )
            if not others:
                outcome.held_back.append({"role": name, "reason": "last security admin"})
                continue
        user.groups.remove(locked.groups[name])
        outcome.revoked.append(name)
        if name == Role.SECURITY_ADMIN.value:
            _invitations_lapse(user=user)
    if outcome.granted or outcome.revoked:
        _staff_sync(user=user)
    add = sorted(access.groups - held)
    remove = sorted((access.managed_groups - access.groups) & held)
    if actor is not None and actor.pk == user.pk and (add or remove):
        outcome.held_back += [{"group": n, "reason": "self"} for n in add + remove]
        return outcome
    for name in add:
        barrier_group = locked.groups.get(name)
        if barrier_group is None:
            outcome.held_back.append({"group": name, "reason": "unknown group"})
            continue
        user.groups.add(barrier_group)
        outcome.added.append(name)
    if remove:
        user.groups.remove(*(locked.groups[name] for name in remove))
        outcome.removed = remove
    return outcome


def _access_record(
    *,
    outcomes: list[_Outcome],
    provider: FederatedProvider,
    actor: User | None,
    via: str,
    extra: Mapping[str, object] | None = None,
    request: HttpRequest | None,
) -> None:
    """Audit ``account.idp_access.applied`` for each person changed or held back (none
    for the others), with the rooms they are in that now violate a barrier. After every
    write of the transaction: the audit chain is the last lock."""
    hooks = room_hooks()
    recorded = [o for o in outcomes if o.changed or o.held_back]
    violations = {o.user.pk: len(hooks.barrier_violations(o.user)) for o in recorded}
    for outcome in recorded:
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_IDP_ACCESS_APPLIED,
            target=outcome.user,
            extra={
                "provider": provider.key,
                "via": via,
                **(extra or {}),
                "roles_granted": outcome.granted,
                "roles_revoked": outcome.revoked,
                "groups_added": outcome.added,
                "groups_removed": outcome.removed,
                "held_back": outcome.held_back,
                "rooms_in_violation": violations[outcome.user.pk],
            },
            request=request,
        )


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
    the provider; ``provider``, ``via: sign_in``, what was granted, revoked, added and
    removed, what was held back and why, and the rooms that now violate a barrier), only
    when something changed or was held back. Locks: the roles' and groups' rows, the
    person's row, their rooms; the audit chain last.
    """
    access = groups_mapped(identity.provider, identity.groups)
    if not access.configured:
        return False
    locked = _access_locks(
        provider=identity.provider,
        user_ids=[user.pk],
        people_locked=lambda ids: {u.pk: u for u in rows_locked(User, ids)},
    )
    outcome = _access_change(locked=locked, user=locked.people[user.pk], access=access)
    _access_record(
        outcomes=[outcome], provider=identity.provider, actor=None, via=VIA_SIGN_IN,
        request=request,
    )  # fmt: skip
    return outcome.changed
