"""Provisioning by an identity provider (SCIM 2.0, docs/sso.md "Provisioning (SCIM)").

The SCIM edge (``accounts/api/scim.py``) authenticates the provider's token (scope
``scim``, owned by a security admin: the actor of every change here) and calls these
services; deactivation and reactivation are the same ``user_deactivate`` and
``user_reactivate`` every other edge calls (sessions, sockets and tokens end at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from accounts.hooks import room_hooks
from accounts.models import ProvisionedAccount, ScimGroup, User
from accounts.password_policy import break_glass
from accounts.providers import federated_provider_get
from accounts.roles import MANAGE_USERS, Role
from accounts.selectors import people
from accounts.services._common import actor_and_people_locked, ensure_permission, ensure_person
from accounts.services.idp_access import (
    VIA_SCIM,
    _access_change,
    _access_locks,
    _access_record,
    _Outcome,
)
from accounts.services.profile import NAME_FIELDS, display_name_clean
from accounts.services.users import _role_add, _user_create
from accounts.sso import FederatedProvider, groups_mapped
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.locks import rows_locked

_EMAIL = EmailValidator()


@action
def scim_user_create(
    *,
    actor: User,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    external_id: str = "",
    request: HttpRequest | None = None,
) -> User:
    """Create the account an identity provider provisions (SCIM ``POST /Users``).

    The username goes through the one account-creation path (``_user_create``): PRECIS
    form (RFC 8265), refused if invalid, taken or a look-alike of a taken one (UTS #39);
    the e-mail is checked and must not be another account's; names follow
    ``display_name_clean``. No password (the provider signs the person in; a security
    admin can send a reset link), the ``member`` role, its key pair; ``external_id`` is
    kept (``ProvisionedAccount``). Raises ``ValidationError`` keyed by field (nothing
    written) and ``Refused`` (``account.provisioning.refused``, ``permission``) unless
    ``actor`` is active and holds ``accounts.manage_users`` (checked again under its row).
    Audited ``account.created`` (``via: scim``). Locks: the actor's row; the audit chain
    last.
    """
    operation = "scim.user.create"
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=AuditAction.ACCOUNT_PROVISIONING_REFUSED,
        operation=operation, request=request,
    )  # fmt: skip
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[], permission=MANAGE_USERS,
            action=AuditAction.ACCOUNT_PROVISIONING_REFUSED, operation=operation,
            request=request,
        )  # fmt: skip
        user = _user_create(
            username=username, email=email, password=None,
            first_name=first_name, last_name=last_name,
        )  # fmt: skip
        _role_add(user=user, role=Role.MEMBER)
        ProvisionedAccount.objects.create(user=user, external_id=external_id)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_CREATED,
            target=user,
            extra={"via": "scim", "role": Role.MEMBER.value},
            request=request,
        )
    return user


def _email_clean(*, email: str, user: User) -> str:
    email = email.strip().lower()
    if not email:
        return ""
    try:
        _EMAIL(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.error_list}) from None
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise ValidationError(
            {
                "email": ValidationError(
                    "An account with that email address exists already.", code="email_taken"
                )
            }
        )
    return email


def _ensure_email_provisionable(
    *,
    actor: User,
    user: User,
    refusal: AuditAction,
    operation: str,
    request: HttpRequest | None,
) -> None:
    """Refuse (``Refused``, audited) a provider's change of the e-mail of the token's own
    owner (``self``), of a security admin (``security admin``) or of a break-glass account
    (``break-glass``): a password reset is mailed to that address, so whoever can set it
    holds one factor of the account. No other edge lets one person set another's e-mail."""
    if user.pk == actor.pk:
        reason = "self"
    elif user.groups.filter(name=Role.SECURITY_ADMIN.value).exists():
        reason = "security admin"
    elif break_glass(user.username):
        reason = "break-glass"
    else:
        return
    raise Refused(
        "An identity provider may not change this account's e-mail: a password reset would "
        "be mailed there. A security administrator changes it by hand.",
        actor=actor,
        action=refusal,
        target=user,
        reason=reason,
        extra={"operation": operation, "field": "email"},
        request=request,
    )


@action
def scim_user_update(
    *,
    actor: User,
    user: User,
    username: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
    external_id: str | None = None,
    request: HttpRequest | None = None,
) -> list[str]:
    """Change what an identity provider keeps of an account (SCIM ``PUT``/``PATCH``):
    the names, the e-mail, ``external_id``; None leaves a field as it is, "" clears it.
    Returns the fields that changed.

    A username is permanent here: one that is not the account's own (in PRECIS form) is
    refused (``ValidationError``, ``username``, code ``mutability``). Names follow
    ``display_name_clean``; an e-mail must be valid and not another account's
    (``email_taken``). ``Refused`` (``account.provisioning.refused``): ``permission``
    (checked again under the rows), ``not a person``, and for an e-mail change of the
    token's owner, a security admin or a break-glass account ``self``, ``security admin``,
    ``break-glass`` (``_ensure_email_provisionable``). Audited
    ``account.provisioning.updated`` with the fields changed, never their values; a name
    change is heard by the person's rooms (``member.updated``) after commit. Nothing that
    changes nothing is written or recorded. Locks: the actor and the account; the audit
    chain last.
    """
    operation = "scim.user.update"
    refusal = AuditAction.ACCOUNT_PROVISIONING_REFUSED
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=refusal, target=user, operation=operation,
        request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, action=refusal, operation=operation, request=request)
    names = display_name_clean(first_name=first_name, last_name=last_name)
    with action_transaction():
        locked = actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, action=refusal, target=user,
            operation=operation, request=request,
        )[user.pk]  # fmt: skip
        if username is not None and User.normalize_username(username.strip()) != locked.username:
            raise ValidationError(
                {
                    "username": ValidationError(
                        "A SafeChat username cannot be changed.", code="mutability"
                    )
                }
            )
        wanted: dict[str, str] = dict(names)
        if email is not None:
            wanted["email"] = _email_clean(email=email, user=locked)
        changed = [f for f, v in wanted.items() if getattr(locked, f) != v]
        if "email" in changed:
            _ensure_email_provisionable(
                actor=actor, user=locked, refusal=refusal, operation=operation, request=request
            )
        for field in changed:
            setattr(locked, field, wanted[field])
        if changed:
            try:
                with transaction.atomic():
                    locked.save(update_fields=changed)
            except IntegrityError:
                raise ValidationError(
                    {"email": ValidationError("That email is taken.", code="email_taken")}
                ) from None
        # The record marks an account SCIM has written to: a request that changes nothing
        # writes nothing, not even that.
        record = ProvisionedAccount.objects.filter(user=locked).first()
        if external_id is not None and (record.external_id if record else "") != external_id:
            if record is None:
                record = ProvisionedAccount.objects.create(user=locked, external_id=external_id)
            else:
                record.external_id = external_id
                record.save(update_fields=["external_id", "updated_at"])
            changed.append("external_id")
        elif changed and record is None:
            ProvisionedAccount.objects.create(user=locked)
        if changed:
            audit_record(
                actor=actor,
                action=AuditAction.ACCOUNT_PROVISIONING_UPDATED,
                target=locked,
                extra={"fields": changed},
                request=request,
            )
            if any(f in NAME_FIELDS for f in changed):
                room_hooks().member_renamed(locked)
    for field in changed:
        if field != "external_id":
            setattr(user, field, getattr(locked, field))
    return changed


@action
def scim_request_refused(
    *,
    actor: User | None,
    reason: str,
    detail: str,
    target: User | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Record a SCIM request refused at the edge or by validation (a token without the
    ``scim`` scope, a malformed filter or body, an invalid or taken value, an unknown
    account): ``account.provisioning.refused`` with ``reason`` (the SCIM error keyword or
    ``scope``, ``not_found``) and ``detail`` (at most 200 characters, never a value the
    client sent). Writes nothing else."""
    with action_transaction():
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_PROVISIONING_REFUSED,
            target=target,
            extra={"reason": reason[:64], "detail": detail[:200]},
            request=request,
        )


# --- Groups (SCIM 2.0 Group, RFC 7643 4.2; docs/sso.md "SCIM Groups") ------------------


def _scim_groups_provider() -> FederatedProvider | None:
    """The provider whose ``role_map`` and ``barrier_group_map`` SCIM groups are mapped
    by (``SAFECHAT_SCIM_GROUPS_PROVIDER``), or None: then SCIM groups map nothing."""
    key = getattr(settings, "SAFECHAT_SCIM_GROUPS_PROVIDER", "")
    return federated_provider_get(key) if key else None


def _members_after(current: set[int], operations: Sequence[tuple[str, Sequence[int]]]) -> set[int]:
    members = set(current)
    for op, ids in operations:
        if op == "add":
            members |= set(ids)
        elif op == "remove":
            members -= set(ids)
        else:
            members = set(ids)
    return members


@dataclass
class _GroupWritten:
    """What ``_scim_group_write`` did: the group, its fields changed, the member ids
    added and removed, and what the mapping did for each person (none without one)."""

    group: ScimGroup
    fields: list[str]
    added: list[int]
    removed: list[int]
    provider: FederatedProvider | None
    outcomes: list[_Outcome]

    @property
    def changed(self) -> list[str]:
        return [*self.fields, *(["members"] if self.added or self.removed else [])]


def _scim_group_write(
    *,
    actor: User,
    group: ScimGroup | None,
    operation: str,
    display_name: str | None,
    external_id: str | None,
    member_changes: Sequence[tuple[str, Sequence[int]]],
    delete: bool = False,
    request: HttpRequest | None,
) -> _GroupWritten:
    """The one write of a SCIM group (create, change, delete) and of what its change
    means for its members (the mapping, ``idp_access``). Inside the caller's transaction;
    returns the group and what changed. Locks, in the project's order: the SCIM group's
    row, the roles' and groups' rows the mapping names, the actor and every person whose
    SCIM groups change (ascending), every room they are in; the audit chain last."""
    refusal = AuditAction.ACCOUNT_PROVISIONING_REFUSED
    if group is not None:
        # FOR UPDATE where the row is deleted, else FOR NO KEY UPDATE (safechat.locks).
        found = (
            list(ScimGroup.objects.select_for_update().filter(pk=group.pk))
            if delete
            else rows_locked(ScimGroup, [group.pk])
        )
        if not found:
            raise ScimGroup.DoesNotExist("No such group.")
        group = found[0]
        current = set(group.members.values_list("pk", flat=True))
        before = group.values()
    else:
        group = ScimGroup()
        current, before = set(), frozenset()
    members = set() if delete else _members_after(current, member_changes)
    named = {i for op, ids in member_changes if op != "remove" for i in ids}
    if len(named) != people().filter(pk__in=named).count():
        raise ValidationError(
            {"members": ValidationError("A member names no SafeChat account.", code="invalid")}
        )
    fields: list[str] = []
    if display_name is not None and display_name != group.display_name:
        group.display_name = display_name
        fields.append("display_name")
    if external_id is not None and external_id != group.external_id:
        group.external_id = external_id
        fields.append("external_id")
    after = frozenset() if delete else group.values()
    affected = (members ^ current) | (current & members if after != before else set())
    provider = _scim_groups_provider()
    mapped = provider is not None and groups_mapped(provider, ()).configured
    lock_people = partial(
        actor_and_people_locked, actor=actor, permission=MANAGE_USERS, action=refusal,
        operation=operation, request=request,
    )  # fmt: skip
    if provider is not None and mapped:
        locked = _access_locks(
            provider=provider,
            user_ids=affected,
            people_locked=lambda ids: lock_people(users=[User(pk=i) for i in ids]),
        )
    else:
        lock_people(users=[User(pk=i) for i in sorted(affected)])
    if delete:
        group_id = group.pk
        group.delete()
        group.pk = group_id
    else:
        try:
            with transaction.atomic():
                group.save()
        except IntegrityError:
            raise ValidationError(
                {
                    "displayName": ValidationError(
                        "A group with that displayName exists already.", code="unique"
                    )
                }
            ) from None
        if members != current:
            group.members.remove(*(current - members))
            group.members.add(*(members - current))
    outcomes = []
    if provider is not None and mapped:
        scim_values: dict[int, set[str]] = {pk: set() for pk in affected}
        for held in (
            ScimGroup.objects.filter(members__in=affected).distinct().prefetch_related("members")
        ):
            for member in held.members.all():
                if member.pk in scim_values:
                    scim_values[member.pk] |= held.values()
        for pk in sorted(affected):
            person = locked.people.get(pk)
            if person is not None:
                access = groups_mapped(provider, scim_values[pk])
                outcomes.append(
                    _access_change(locked=locked, user=person, access=access, actor=actor)
                )
    return _GroupWritten(
        group=group,
        fields=fields,
        added=sorted(members - current),
        removed=sorted(current - members),
        provider=provider if mapped else None,
        outcomes=outcomes,
    )


def _scim_group_record(
    *,
    actor: User,
    written: _GroupWritten,
    action: AuditAction,
    request: HttpRequest | None,
) -> None:
    group = written.group
    audit_record(
        actor=actor,
        action=action,
        target=group,
        extra={
            "scim_group": group.pk,
            "display_name": group.display_name,
            "external_id": group.external_id,
            "fields": written.fields,
            "members_added": written.added,
            "members_removed": written.removed,
        },
        request=request,
    )
    if written.provider is not None:
        _access_record(
            outcomes=written.outcomes,
            provider=written.provider,
            actor=actor,
            via=VIA_SCIM,
            extra={"scim_group": group.pk},
            request=request,
        )


def _ensure_scim_allowed(*, actor: User, operation: str, request: HttpRequest | None) -> None:
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=AuditAction.ACCOUNT_PROVISIONING_REFUSED,
        operation=operation, request=request,
    )  # fmt: skip


@action
def scim_group_create(
    *,
    actor: User,
    display_name: str,
    external_id: str = "",
    member_ids: Sequence[int] = (),
    request: HttpRequest | None = None,
) -> ScimGroup:
    """Create the group an identity provider provisions (SCIM ``POST /Groups``, RFC 7644
    3.3) with its members (SafeChat account ids), and apply what it maps to for them:
    the roles and barrier groups that ``SAFECHAT_SCIM_GROUPS_PROVIDER``'s ``role_map`` and
    ``barrier_group_map`` name it by (its ``display_name`` or ``external_id``), under the
    sign-in's rules (``idp_access``) and two more: a security admin's roles are never
    changed, nor the actor's own barrier groups (held back, audited with the reason).

    Raises ``ValidationError`` (nothing written): ``displayName`` taken (``unique``), a
    member that names no account (``members``, ``invalid``). ``Refused``
    (``account.provisioning.refused``, ``permission``) unless ``actor`` is active and
    holds ``accounts.manage_users`` (checked again under its row). Audited
    ``account.provisioning.group_created`` (with the members' ids), then
    ``account.idp_access.applied`` (``via: scim``) per person changed or held back.
    Locks: the mapped roles' and groups' rows, the actor and the members (ascending),
    their rooms; the audit chain last.
    """
    operation = "scim.group.create"
    _ensure_scim_allowed(actor=actor, operation=operation, request=request)
    with action_transaction():
        written = _scim_group_write(
            actor=actor, group=None, operation=operation, display_name=display_name,
            external_id=external_id, member_changes=[("replace", list(member_ids))],
            request=request,
        )  # fmt: skip
        _scim_group_record(
            actor=actor, written=written, action=AuditAction.ACCOUNT_PROVISIONING_GROUP_CREATED,
            request=request,
        )  # fmt: skip
    return written.group


@action
def scim_group_update(
    *,
    actor: User,
    group: ScimGroup,
    display_name: str | None = None,
    external_id: str | None = None,
    member_changes: Sequence[tuple[str, Sequence[int]]] = (),
    request: HttpRequest | None = None,
) -> list[str]:
    """Change a SCIM group (``PUT``, ``PATCH``): its ``display_name`` and ``external_id``
    (None leaves one as it is, ``external_id`` "" clears it) and its members, by
    ``member_changes`` applied in order (``("add", ids)``, ``("remove", ids)``,
    ``("replace", ids)``: the whole list; a removed id that is no member is no change).
    Then what the group maps to is applied, as ``scim_group_create`` says, for everyone
    whose SCIM groups changed: the people added or removed, and every member when the
    name or ``external_id`` changed (the mapping may name it by either). Returns what
    changed (``display_name``, ``external_id``, ``members``).

    Raises ``ValidationError`` (nothing written; as for a create), ``ScimGroup.DoesNotExist``
    (deleted meanwhile), ``Refused`` (``permission``). Audited
    ``account.provisioning.group_updated`` (fields and the member ids added and removed)
    and ``account.idp_access.applied`` per person changed or held back; a request that
    changes nothing writes and records nothing. Locks: the SCIM group's row, then as for
    a create; the audit chain last.
    """
    operation = "scim.group.update"
    _ensure_scim_allowed(actor=actor, operation=operation, request=request)
    with action_transaction():
        written = _scim_group_write(
            actor=actor, group=group, operation=operation, display_name=display_name,
            external_id=external_id, member_changes=member_changes, request=request,
        )  # fmt: skip
        changed = written.changed
        if changed:
            _scim_group_record(
                actor=actor, written=written,
                action=AuditAction.ACCOUNT_PROVISIONING_GROUP_UPDATED, request=request,
            )  # fmt: skip
    group.display_name = written.group.display_name
    group.external_id = written.group.external_id
    return changed


@action
def scim_group_delete(*, actor: User, group: ScimGroup, request: HttpRequest | None = None) -> None:
    """Delete a SCIM group (``DELETE /Groups/<id>``): its members lose what it mapped to
    (unless another of their SCIM groups maps to it too), under the rules of
    ``scim_group_create``. Raises ``ScimGroup.DoesNotExist`` (deleted meanwhile) and
    ``Refused`` (``permission``). Audited ``account.provisioning.group_deleted`` (its
    members' ids) and ``account.idp_access.applied`` per person changed or held back.
    Locks: as ``scim_group_update``; the audit chain last."""
    operation = "scim.group.delete"
    _ensure_scim_allowed(actor=actor, operation=operation, request=request)
    with action_transaction():
        written = _scim_group_write(
            actor=actor, group=group, operation=operation, display_name=None,
            external_id=None, member_changes=(), delete=True, request=request,
        )  # fmt: skip
        _scim_group_record(
            actor=actor, written=written, action=AuditAction.ACCOUNT_PROVISIONING_GROUP_DELETED,
            request=request,
        )  # fmt: skip
