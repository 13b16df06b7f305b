"""Accounts: first boot, invitations, roles, deactivation, passwords and lockouts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import login, password_validation, update_session_auth_hash
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts.credentials import new_link_token, sha256_hex
from accounts.hooks import RoomHooks, room_hooks, rooms_named
from accounts.models import BootstrapToken, Invitation, User, UserSession
from accounts.password_policy import password_signs_in
from accounts.roles import MANAGE_USERS, STAFF_ROLES, Role
from accounts.selectors import CHAT_READ_ONLY_ROLES, people_exist, person_get
from accounts.services._common import (
    InvalidLink,
    actor_and_people_locked,
    ensure_not_last_security_admin,
    ensure_not_self,
    ensure_permission,
    ensure_person,
    failure_count,
    security_admins_locked,
)
from accounts.services.auth import LOCKED_OUT
from accounts.services.profile import display_name_clean
from accounts.services.sessions import (
    SessionNoLongerValid,
    credentials_bump,
    session_hold,
    session_start,
)
from accounts.session_policy import session_key_hash
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.keyring.services import user_key_create
from safechat.locks import rows_locked


# --- First boot ---------------------------------------------------------------
class BootstrapRefused(Exception):
    """Accounts exist already: the bootstrap path is closed for good."""


@action
def bootstrap_token_create() -> str:
    """A one-time link token for the first security admin; only its hash is stored.

    Refused once any account exists. Earlier unused tokens stop working.
    """
    with action_transaction():
        if people_exist():
            raise BootstrapRefused("accounts exist; use an invitation instead")
        BootstrapToken.objects.filter(used_at__isnull=True).delete()
        token, token_hash = new_link_token()
        BootstrapToken.objects.create(
            token_hash=token_hash,
            expires_at=timezone.now() + timedelta(minutes=settings.SAFECHAT_BOOTSTRAP_MINUTES),
        )
    return token


@action
def bootstrap_admin_create(
    *,
    request: HttpRequest,
    token: str,
    username: str,
    email: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create the first security admin through the bootstrap link, and sign them in.

    The link works once, within its hour, and only while no account exists. The
    new admin's session is password-only: enrolment of a factor comes next. The name
    is optional and checked as every display name is (``display_name_clean``).
    """
    with action_transaction():
        row = (
            BootstrapToken.objects.select_for_update().filter(token_hash=sha256_hex(token)).first()
        )
        reason = _link_refusal(
            found=row is not None,
            used_at=row.used_at if row else None,
            expires_at=row.expires_at if row else None,
        )
        if reason is None and people_exist():
            reason = "users_exist"
        if reason is None and row is not None:
            user = _user_create(
                username=username, email=email, password=password,
                first_name=first_name, last_name=last_name,
            )  # fmt: skip
            _role_add(user=user, role=Role.SECURITY_ADMIN)
            row.used_at = timezone.now()
            row.save(update_fields=["used_at"])
            audit_record(
                actor=user, action=AuditAction.AUTH_BOOTSTRAP_USED, target=user, request=request
            )
            audit_record(
                actor=user,
                action=AuditAction.ACCOUNT_CREATED,
                target=user,
                extra={"via": "bootstrap", "role": Role.SECURITY_ADMIN.value},
                request=request,
            )
            _sign_in_new_user(request=request, user=user)
            return user
    raise InvalidLink(
        action=AuditAction.AUTH_BOOTSTRAP_REFUSED, reason=reason or "", request=request
    )


def _link_refusal(
    *, found: bool, used_at: datetime | None, expires_at: datetime | None
) -> str | None:
    """Why a single-use, expiring link (bootstrap, invitation) is refused, or None."""
    if not found:
        return "unknown"
    if used_at is not None:
        return "used"
    if expires_at is None or expires_at <= timezone.now():
        return "expired"
    return None


# The constraints of ``User`` whose violation is a refusal of one field, and what it says
# (a constraint's default message names the constraint, not the problem).
_FIELD_CONSTRAINTS: dict[str, tuple[str, str, str]] = {
    "accounts_user_username_skeleton_unique": (
        "username", "username_lookalike", "That username is too similar to an existing one.",
    ),
    "accounts_user_email_unique_ci": (
        "email", "email_taken", "An account with that email address exists already.",
    ),
}  # fmt: skip
# A username refused for several reasons at once is answered with the most precise one:
# a character the PRECIS profile refuses (named), then Django's character rule, then
# "taken", then "looks like one taken" (a taken name's skeleton is taken too).
_USERNAME_REFUSALS = ("username_invalid", "username_not_canonical", "invalid", "unique")


class _SelfValidating(Protocol):
    name: str

    def validate(self, model: type[Model], instance: Model, exclude: set[str]) -> None: ...


def _one_username_refusal(errors: list[ValidationError]) -> list[ValidationError]:
    ranked = sorted(
        errors,
        key=lambda e: (
            _USERNAME_REFUSALS.index(e.code)
            if e.code in _USERNAME_REFUSALS
            else len(_USERNAME_REFUSALS)
        ),
    )
    return ranked[:1]


def _user_create(
    *, username: str, email: str, password: str | None, first_name: str = "", last_name: str = ""
) -> User:
    """Validate and create (inside the caller's transaction). ``password`` None makes an
    account with no usable password (one an identity provider provisions and signs in).

    Every refusal is found before any is raised, and each is said once, on its own field:
    ``ValidationError`` keyed by ``username`` (one message: invalid, taken, or a
    look-alike of a taken one, UTS #39), ``email`` (taken), ``password`` (each rule the
    password breaks, Django's validators) and the name fields (``display_name_clean``).
    """
    errors: dict[str, list[ValidationError]] = {}
    try:
        names = display_name_clean(first_name=first_name, last_name=last_name)
    except ValidationError as exc:
        errors.update(exc.error_dict)
        names = {}
    # The username in its PRECIS form (RFC 8265); full_clean refuses an invalid one, the
    # constraints a look-alike of an existing one (UTS #39 skeleton) and a taken email,
    # and the constraints hold under races.
    user = User(
        username=User.normalize_username(username.strip()),
        email=email.strip().lower(),
        **names,
    )
    try:
        user.full_clean(exclude=["password", *errors], validate_constraints=False)
    except ValidationError as exc:
        for field, found in exc.error_dict.items():
            errors.setdefault(field, []).extend(found)
    for model, constraints in user.get_constraints():
        for constraint in constraints:
            try:
                # Every constraint validates itself since Django 4.1 (not in the stubs).
                cast(_SelfValidating, constraint).validate(model, user, exclude={"password"})
            except ValidationError as exc:
                field, code, message = _FIELD_CONSTRAINTS.get(
                    constraint.name, (NON_FIELD_ERRORS, exc.code or "", exc.messages[0])
                )
                errors.setdefault(field, []).append(ValidationError(message, code=code))
    if "username" in errors:
        errors["username"] = _one_username_refusal(errors["username"])
    if password is not None:
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            errors["password"] = exc.error_list
    if errors:
        raise ValidationError(errors)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        raise ValidationError(
            "That username or email is already taken, or looks like one that is."
        ) from exc
    # Every account has its own key pair from the start (its private half wrapped).
    user_key_create(user=user)
    return user


def _sign_in_new_user(*, request: HttpRequest, user: User) -> None:
    login(request, user, backend="accounts.backends.RoleBackend")
    session_start(request=request, user=user)


# --- Invitations --------------------------------------------------------------
@action
def invitation_create(
    *, actor: User, email: str, role: Role, request: HttpRequest | None = None
) -> tuple[Invitation, str]:
    """Invite ``email`` as ``role``; the single-use link is emailed after commit.

    Returns the invitation and the link token (for the inviter to hand over if
    mail is not available); only the token's hash is stored.
    """
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, operation="account.invite", request=request
    )
    email = email.strip().lower()
    token, token_hash = new_link_token()
    with action_transaction():
        # The right again, on the inviter's row as it is now (a request in flight when its
        # administrator was deactivated or demoted invites nobody).
        actor_and_people_locked(
            actor=actor, users=[], permission=MANAGE_USERS, operation="account.invite",
            request=request,
        )  # fmt: skip
        invitation = Invitation.objects.create(
            email=email,
            role=Role(role).value,
            token_hash=token_hash,
            invited_by=actor,
            expires_at=timezone.now() + timedelta(hours=settings.SAFECHAT_INVITATION_HOURS),
        )
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_INVITED,
            target=invitation,
            extra={"email": email, "role": invitation.role},
            request=request,
        )
        link = _absolute(request, f"/accounts/invitation/{token}/")
        transaction.on_commit(
            lambda: send_mail(
                "Your SafeChat invitation",
                f"You are invited to SafeChat. Create your account within "
                f"{settings.SAFECHAT_INVITATION_HOURS} hours: {link}\n",
                None,
                [email],
            )
        )
    return invitation, token


def _absolute(request: HttpRequest | None, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


def _inviter_entitled(invitation: Invitation) -> bool:
    """Whether the invitation's author may still invite, read under their row lock (the
    users step, before the invitation's): active and holding ``accounts.manage_users``.
    An invitation lapses with its author's power, as a room invitation does."""
    if invitation.invited_by_id is None:
        return False
    inviter = rows_locked(User, [invitation.invited_by_id])
    return bool(inviter) and inviter[0].is_active and inviter[0].has_perm(MANAGE_USERS)


@action
def invitation_accept(
    *,
    request: HttpRequest,
    token: str,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create the invited account with its role and sign it in (enrolment comes next).
    The name is optional and checked as every display name is (``display_name_clean``).

    Refused (``InvalidLink``, one answer for every reason) for an unknown, used, expired
    or revoked link, and for one whose author is no longer active or no longer holds
    ``accounts.manage_users`` (``inviter no longer entitled``). Locks: the inviter's row,
    then the invitation's; the audit chain last.
    """
    token_hash = sha256_hex(token)
    with action_transaction():
        pending = Invitation.objects.filter(token_hash=token_hash).first()
        entitled = pending is not None and _inviter_entitled(pending)
        invitation = Invitation.objects.select_for_update().filter(token_hash=token_hash).first()
        reason = _link_refusal(
            found=invitation is not None,
            used_at=invitation.accepted_at if invitation else None,
            expires_at=invitation.expires_at if invitation else None,
        )
        if reason is None and invitation is not None and invitation.revoked_at is not None:
            reason = "revoked"
        if reason is None and not entitled:
            reason = "inviter no longer entitled"
        if reason is None and invitation is not None:
            user = _user_create(
                username=username, email=invitation.email, password=password,
                first_name=first_name, last_name=last_name,
            )  # fmt: skip
            _role_add(user=user, role=Role(invitation.role))
            invitation.accepted_at = timezone.now()
            invitation.accepted_user = user
            invitation.save(update_fields=["accepted_at", "accepted_user"])
            audit_record(
                actor=user,
                action=AuditAction.ACCOUNT_INVITATION_ACCEPTED,
                target=invitation,
                request=request,
            )
            audit_record(
                actor=user,
                action=AuditAction.ACCOUNT_CREATED,
                target=user,
                extra={"via": "invitation", "role": invitation.role},
                request=request,
            )
            _sign_in_new_user(request=request, user=user)
            return user
    raise InvalidLink(
        action=AuditAction.ACCOUNT_INVITATION_REFUSED, reason=reason or "", request=request
    )


def _invitations_lapse(*, user: User) -> int:
    """Inside the transaction that takes ``user``'s power to invite away (a deactivation,
    the revocation of the security admin role): their pending invitations are revoked
    for good (``revoked_by`` empty: by the system; the count is in the event of the
    change that caused it), so giving the power back later does not bring them back.
    Returns how many."""
    now = timezone.now()
    pending = Invitation.objects.filter(
        invited_by=user, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    )
    return pending.update(revoked_at=now, revoked_by=None)


@action
def invitation_revoke(
    *, actor: User, invitation: Invitation | None, request: HttpRequest | None = None
) -> bool:
    """Withdraw a pending invitation (security admins): its link creates nothing from now
    on. Returns False for one already accepted, revoked or expired (nothing to do, and
    nothing recorded). Audited ``account.invitation.revoked``. Locks: the actor, then the
    invitation; the audit chain last.

    ``None`` stands for an id that names no invitation (``selectors.invitation_for_revoke``):
    answered ``Http404`` after the actor's right is checked, so someone without it gets
    the same refusal (``Refused``, audited ``account.admin.refused``) for every id.
    """
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, operation="account.invitation.revoke",
        request=request,
    )  # fmt: skip
    if invitation is None:
        raise Http404("no such invitation")
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[], permission=MANAGE_USERS,
            operation="account.invitation.revoke", request=request,
        )  # fmt: skip
        row = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if row.accepted_at is not None or row.revoked_at is not None:
            return False
        if row.expires_at <= timezone.now():
            return False
        row.revoked_at = timezone.now()
        row.revoked_by = actor
        row.save(update_fields=["revoked_at", "revoked_by"])
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_INVITATION_REVOKED,
            target=row,
            extra={"email": row.email, "role": row.role},
            request=request,
        )
    invitation.revoked_at = row.revoked_at
    return True


# --- Roles --------------------------------------------------------------------
def _role_add(*, user: User, role: Role) -> None:
    group, _ = Group.objects.get_or_create(name=role.value)
    user.groups.add(group)
    _staff_sync(user=user)


def _staff_sync(*, user: User) -> None:
    names = set(user.groups.values_list("name", flat=True))
    is_staff = any(r.value in names for r in STAFF_ROLES)
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


def _ensure_role_change_allowed(
    *, actor: User, user: User, role: Role, operation: str, request: HttpRequest | None
) -> None:
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=AuditAction.ACCOUNT_ROLE_REFUSED,
        target=user, operation=operation, request=request,
    )  # fmt: skip
    ensure_person(
        actor=actor, user=user, action=AuditAction.ACCOUNT_ROLE_REFUSED,
        operation=operation, request=request,
    )  # fmt: skip
    if actor.pk == user.pk:
        raise Refused(
            "Nobody changes their own role; ask another security administrator.",
            actor=actor,
            action=AuditAction.ACCOUNT_ROLE_REFUSED,
            target=user,
            reason="self",
            extra={"operation": operation, "role": role.value},
            request=request,
        )


def _role_group_change(
    *, actor: User, user: User, role: Role, grant: bool, request: HttpRequest | None
) -> dict[int, list[Any]]:
    """Grant or revoke ``role``; returns the rooms ``user`` is in that now violate an
    information barrier (roles are groups, and barriers separate groups).

    A role that is read-only on chat (``CHAT_READ_ONLY_ROLES``) is not granted to the
    only acting owner of a room: the room would be left with nobody to manage it
    (refused, ``sole owner``, naming the rooms; appoint another owner first), as a
    deactivation is. Barriers and owners are the rooms app's rules, asked through
    ``accounts.hooks`` (accounts never imports rooms). Locks in the project's order
    (the group, the user, their rooms; audit last), so a room join, an owner leaving
    or a barrier created at the same instant is refused or reported.
    """
    hooks = room_hooks()
    operation = "role.grant" if grant else "role.revoke"
    with action_transaction():
        group, _ = Group.objects.get_or_create(name=role.value)
        rows_locked(Group, [group.pk])
        actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS,
            action=AuditAction.ACCOUNT_ROLE_REFUSED, target=user, operation=operation,
            extra={"role": role.value}, request=request,
        )  # fmt: skip
        hooks.rooms_lock(user)
        held = user.groups.filter(pk=group.pk).exists()
        if grant and not held:
            _require_compatible_roles(actor=actor, user=user, role=role, request=request)
        if not grant and held and role is Role.SECURITY_ADMIN:
            ensure_not_last_security_admin(
                actor=actor, user=user, action=AuditAction.ACCOUNT_ROLE_REFUSED,
                operation=operation, request=request,
            )  # fmt: skip
        if grant and not held and role.value in CHAT_READ_ONLY_ROLES:
            _require_not_sole_owner(
                actor=actor, user=user, hooks=hooks, action=AuditAction.ACCOUNT_ROLE_REFUSED,
                operation="role.grant", role=role, request=request,
            )  # fmt: skip
        if grant:
            user.groups.add(group)
        else:
            user.groups.remove(group)
        _staff_sync(user=user)
        lapsed = 0
        if not grant and held and role is Role.SECURITY_ADMIN:
            lapsed = _invitations_lapse(user=user)
        violations = hooks.barrier_violations(user)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_ROLE_GRANTED if grant else AuditAction.ACCOUNT_ROLE_REVOKED,
            target=user,
            extra={
                "role": role.value,
                "rooms_in_violation": len(violations),
                **({"invitations_revoked": lapsed} if lapsed else {}),
            },
            request=request,
        )
    return violations


# Duties one person never holds together: whoever administers people and rooms is not
# also the auditor of those actions (separation of duties, docs/accounts.md "Roles").
INCOMPATIBLE_ROLES: dict[Role, Role] = {
    Role.SECURITY_ADMIN: Role.COMPLIANCE_OFFICER,
    Role.COMPLIANCE_OFFICER: Role.SECURITY_ADMIN,
}


def _require_compatible_roles(
    *, actor: User, user: User, role: Role, request: HttpRequest | None
) -> None:
    """Under the role group's and ``user``'s locks: raise ``Refused`` (``incompatible
    roles``) if ``user`` holds the role that ``role`` excludes (``INCOMPATIBLE_ROLES``).
    Both roles' changes lock ``user``'s row, so two grants at the same instant of the two
    duties are serialised and the second one sees the first."""
    other = INCOMPATIBLE_ROLES.get(role)
    if other is None or not user.groups.filter(name=other.value).exists():
        return
    raise Refused(
        f"One person does not hold both {role.value} and {other.value}: revoke one first.",
        actor=actor,
        action=AuditAction.ACCOUNT_ROLE_REFUSED,
        target=user,
        reason="incompatible roles",
        extra={"operation": "role.grant", "role": role.value, "held": other.value},
        request=request,
    )


def _require_not_sole_owner(
    *,
    actor: User,
    user: User,
    hooks: RoomHooks,
    action: AuditAction,
    operation: str,
    role: Role | None,
    request: HttpRequest | None,
) -> None:
    """Under ``user``'s lock: raise ``Refused`` (``sole owner``, naming the rooms) if
    ``user`` is the only acting owner of a room, which the change would leave with
    nobody to manage it. The hook locks those rooms."""
    sole = hooks.rooms_owned_only_by(user)
    if not sole:
        return
    raise Refused(
        f"This person is the only owner of {rooms_named(sole)}: appoint another owner first.",
        actor=actor,
        action=action,
        target=user,
        reason="sole owner",
        extra={
            "operation": operation,
            **({"role": role.value} if role is not None else {}),
            "rooms": [room.id for room in sole],
        },
        request=request,
    )


@action
def role_grant(
    *, actor: User, user: User, role: Role, request: HttpRequest | None = None
) -> dict[int, list[Any]]:
    """Grant ``role``; returns the rooms that now violate a barrier (resolve by removal).

    Refused (``account.role.refused``): without ``accounts.manage_users``, for one's own
    account, and (``sole owner``) a role read-only on chat for the only acting owner of
    a room. A refusal changes nothing.
    """
    _ensure_role_change_allowed(
        actor=actor, user=user, role=role, operation="role.grant", request=request
    )
    return _role_group_change(actor=actor, user=user, role=role, grant=True, request=request)


@action
def role_revoke(
    *, actor: User, user: User, role: Role, request: HttpRequest | None = None
) -> dict[int, list[Any]]:
    """Revoke ``role``; returns the rooms that still violate a barrier."""
    _ensure_role_change_allowed(
        actor=actor, user=user, role=role, operation="role.revoke", request=request
    )
    return _role_group_change(actor=actor, user=user, role=role, grant=False, request=request)


# --- Deactivation -------------------------------------------------------------
@action
def user_deactivate(*, actor: User, user: User, request: HttpRequest | None = None) -> None:
    """Deactivate an account: its sessions end, its sockets close and its tokens are revoked.

    In the rooms (the rooms app's ``memberships_suspend``, asked through
    ``accounts.hooks``): every sealed copy of their rooms' epoch keys is deleted and
    each of their rooms starts a new epoch without them at its next content
    (``member-deactivated``); their memberships and room roles stay, dormant (a
    deactivated account holds no room permission). Audited ``account.deactivated``
    with the rooms and the key copies deleted.

    Refused (``sole owner``) while the account is the only acting owner of a room: a
    room always keeps an owner who can act, so another owner is appointed first; and
    (``last security admin``) while it is the only active security admin. Locks: the
    security admins' group, the actor and the user, then every room the user is in
    (``rooms_lock``; the sole-owner rule and the keys are decided under them), then
    key rows, sessions and tokens; the audit chain last.
    """
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, target=user,
        operation="account.deactivate", request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, operation="account.deactivate", request=request)
    ensure_not_self(actor=actor, user=user, operation="account.deactivate", request=request)
    hooks = room_hooks()
    with action_transaction():
        # The security admins' group first (the groups step of the lock order): every
        # deactivation and every revocation of that role is then one at a time, so the
        # count of the others below cannot be made stale by a concurrent one, whoever
        # acts and whatever power the actor holds.
        security_admins_locked()
        locked = actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, target=user,
            operation="account.deactivate", request=request,
        )[user.pk]  # fmt: skip
        if locked.is_active:
            ensure_not_last_security_admin(
                actor=actor, user=locked, operation="account.deactivate", request=request
            )
        # Every room they are in (the rooms step, in id order), before any is decided on.
        hooks.rooms_lock(locked)
        # A room keeps an owner: the rooms app's rule, asked under the user's lock.
        _require_not_sole_owner(
            actor=actor, user=locked, hooks=hooks, action=AuditAction.ACCOUNT_ADMIN_REFUSED,
            operation="account.deactivate", role=None, request=request,
        )  # fmt: skip
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        # Their room keys go, and no later content of those rooms is under a key they hold.
        keys_revoked = hooks.memberships_suspend(locked)
        ended, revoked = credentials_bump(user=locked, reason="deactivated", revoke_tokens=True)
        lapsed = _invitations_lapse(user=locked)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_DEACTIVATED,
            target=locked,
            extra={
                "sessions_ended": ended,
                "tokens_revoked": revoked,
                "rooms": len(keys_revoked),
                "room_keys_revoked": sum(keys_revoked.values()),
                **({"invitations_revoked": lapsed} if lapsed else {}),
            },
            request=request,
        )
    user.is_active = False


@action
def user_reactivate(*, actor: User, user: User, request: HttpRequest | None = None) -> None:
    """Reactivate a deactivated account (``accounts.manage_users``; never one's own).

    Reactivating is the administrator's decision to give the person back their place:
    their roles, and their memberships and room roles (dormant while deactivated), come
    back. Their old sessions and tokens do not: the deactivation ended and revoked them
    for good, so the person signs in again (password and second factor) and makes new
    tokens. Nor does what they could read: in each room they return as a newcomer does
    (the rooms app's ``memberships_resume``, asked through ``accounts.hooks``): in a
    room that hides history they see nothing posted before their return, and they
    receive only the keys the room's history rule gives a newcomer. Audited
    ``account.reactivated`` with the rooms and the keys sealed to them; an account
    already active is left as it is, unrecorded. Raises ``Refused`` (audited
    ``account.admin.refused``, nothing changed). Locks: the actor and the user, then
    every room the user is in, their memberships, key rows; the audit chain last.
    """
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, target=user,
        operation="account.reactivate", request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, operation="account.reactivate", request=request)
    ensure_not_self(actor=actor, user=user, operation="account.reactivate", request=request)
    hooks = room_hooks()
    user_key_create(user=user)  # before any lock: it appends to the audit chain
    with action_transaction():
        locked = actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, target=user,
            operation="account.reactivate", request=request,
        )[user.pk]  # fmt: skip
        if locked.is_active:
            return
        locked.is_active = True
        locked.save(update_fields=["is_active"])
        hooks.rooms_lock(locked)
        keys_granted = hooks.memberships_resume(locked)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_REACTIVATED,
            target=locked,
            extra={
                "rooms": len(keys_granted),
                "room_keys_granted": sum(keys_granted.values()),
            },
            request=request,
        )
    user.is_active = True


@action
def user_admin_target(
    *,
    actor: User,
    user_id: int,
    permission: str,
    operation: str,
    action: AuditAction = AuditAction.ACCOUNT_ADMIN_REFUSED,
    request: HttpRequest | None = None,
) -> User | None:
    """The account an administrator means to act on, or None if there is none.

    The permission is checked before the id is looked up, so someone without it gets
    the same refusal (``Refused``, audited ``action``) whether the account exists or
    not: the answer tells nothing about which ids exist. The service that then acts
    checks again, under its locks.
    """
    ensure_permission(
        actor=actor, permission=permission, action=action, operation=operation,
        extra={"user_id": user_id}, request=request,
    )  # fmt: skip
    # People only, active or not (a reactivation names a deactivated account): never
    # django-guardian's internal anonymous user row.
    return person_get(user_id=user_id)


# --- Passwords ----------------------------------------------------------------
class PasswordRejected(ValueError):
    pass


@action
def password_change(
    *, request: HttpRequest, user: User, current_password: str, new_password: str
) -> None:
    """Change one's own password; other sessions of the user end, this one is kept.

    The current password is checked against the user's row as locked, in the session
    as it stands under that lock (``session_hold``): a change in flight when a security
    admin resets the account is refused, never applied over the reset.

    A wrong current password counts with django-axes like a wrong password at sign-in
    (per username and IP, ``SAFECHAT_LOCKOUT_FAILURES``), so a stolen session cannot
    guess it: past the limit the change is refused without checking (audited
    ``auth.login.failed`` with ``locked``, the lockout once as ``auth.lockout``) until
    the cool-off ends or a security admin lifts it. Raises ``PasswordRejected``.
    """
    password_validation.validate_password(new_password, user)
    credentials = {"username": user.username}
    if AxesProxyHandler.is_locked(request, credentials):
        with action_transaction():
            audit_record(
                actor=user,
                action=AuditAction.AUTH_LOGIN_FAILED,
                target=user,
                extra={"step": "password_change", "locked": True},
                request=request,
            )
        raise PasswordRejected(LOCKED_OUT)
    key = request.session.session_key
    try:
        with action_transaction():  # records the refusal after the rollback
            locked = session_hold(request=request, user=user)
            accepted = locked.check_password(current_password)
            if not accepted:  # recorded, and nothing else done (committed, then refused)
                audit_record(
                    actor=user,
                    action=AuditAction.AUTH_LOGIN_FAILED,
                    target=user,
                    extra={"step": "password_change"},
                    request=request,
                )
            else:
                _password_change_locked(
                    request=request, user=user, locked=locked, new_password=new_password, key=key
                )
    except SessionNoLongerValid as exc:
        raise PasswordRejected(str(exc)) from None
    if not accepted:
        if failure_count(
            request=request, user=user, step="password_change", sender=password_change
        ):
            raise PasswordRejected(LOCKED_OUT)
        raise PasswordRejected("Your current password was not accepted.")
    # Django rotates the session key here; the session row follows it.
    old_hash = session_key_hash(key) if key else None
    update_session_auth_hash(request, user)
    new_key = request.session.session_key
    if old_hash and new_key:
        UserSession.objects.filter(key_hash=old_hash).update(key_hash=session_key_hash(new_key))


def _password_change_locked(
    *, request: HttpRequest, user: User, locked: User, new_password: str, key: str | None
) -> int:
    """The change itself, under the user's lock: returns how many other sessions ended."""
    user.password = locked.password
    user.set_password(new_password)
    user.save(update_fields=["password"])
    ended, _ = credentials_bump(
        user=user,
        reason="password_changed",
        keep_key_hash=session_key_hash(key) if key else None,
        revoke_tokens=False,
    )
    audit_record(
        actor=user,
        action=AuditAction.AUTH_PASSWORD_CHANGED,
        target=user,
        extra={"other_sessions_ended": ended},
        request=request,
    )
    return ended


def _reset_link(request: HttpRequest | None, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return _absolute(request, f"/accounts/password-reset/{uid}/{token}/")


def _send_reset_mail(*, request: HttpRequest | None, user: User) -> None:
    link = _reset_link(request, user)
    email = user.email
    transaction.on_commit(
        lambda: send_mail(
            "Reset your SafeChat password",
            "Someone asked to reset your SafeChat password. If it was you, open this link "
            f"(it works once): {link}\nIf it was not, ignore this message.\n",
            None,
            [email],
        )
    )


@action
def password_reset_request(*, email: str, request: HttpRequest | None = None) -> None:
    """Email a single-use reset link if an active account has ``email``; silent otherwise.
    With local passwords off, only to a break-glass account (others: recorded with
    ``refused: local_passwords_disabled``, nothing sent, the same answer)."""
    email = email.strip().lower()[:254]
    user = User.objects.filter(email__iexact=email, is_active=True).first() if email else None
    # With local passwords off, a reset link would sign no one in but a break-glass account.
    refused = user is not None and not password_signs_in(user.get_username())
    with action_transaction():
        audit_record(
            actor=None,
            action=AuditAction.AUTH_PASSWORD_RESET_REQUESTED,
            target=user,
            extra={
                "by": "self",
                "known": user is not None,
                **({"refused": "local_passwords_disabled"} if refused else {}),
            },
            request=request,
        )
        if user is not None and not refused:
            _send_reset_mail(request=request, user=user)


@action
def password_reset_by_admin(*, actor: User, user: User, request: HttpRequest | None = None) -> None:
    """A security admin voids the password, ends the sessions and emails a reset link."""
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, target=user,
        operation="password.reset", request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, operation="password.reset", request=request)
    ensure_not_self(actor=actor, user=user, operation="password.reset", request=request)
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, target=user,
            operation="password.reset", request=request,
        )  # fmt: skip
        user.set_unusable_password()
        user.save(update_fields=["password"])
        ended, revoked = credentials_bump(user=user, reason="password_reset", revoke_tokens=True)
        audit_record(
            actor=actor,
            action=AuditAction.AUTH_PASSWORD_RESET_REQUESTED,
            target=user,
            extra={"by": "admin", "sessions_ended": ended, "tokens_revoked": revoked},
            request=request,
        )
        if user.email:
            _send_reset_mail(request=request, user=user)


def password_reset_user(*, uidb64: str, token: str) -> User | None:
    """The active user a reset link belongs to, if the link is still valid."""
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
    except (ValueError, TypeError, OverflowError):
        return None
    user = User.objects.filter(pk=pk, is_active=True).first()
    if user is None or not default_token_generator.check_token(user, token):
        return None
    return user


@action
def password_reset_confirm(
    *, request: HttpRequest, uidb64: str, token: str, new_password: str
) -> User:
    """Set a new password through a reset link; the link then stops working.

    Django's token covers the password hash, so changing it voids the link. All
    sessions of the user end; signing in still needs the second factor.
    """
    user = password_reset_user(uidb64=uidb64, token=token)
    if user is None:
        raise InvalidLink(
            action=AuditAction.AUTH_PASSWORD_RESET_REFUSED, reason="invalid", request=request
        )
    password_validation.validate_password(new_password, user)
    with action_transaction():
        # The link is checked again under the user's lock: a reset by a security admin
        # that committed since (it voids the password, and with it the link) wins.
        locked = (
            User.objects.select_for_update(no_key=True).filter(pk=user.pk, is_active=True).first()
        )
        if locked is not None and default_token_generator.check_token(locked, token):
            user = locked
            user.set_password(new_password)
            user.save(update_fields=["password"])
            ended, _ = credentials_bump(user=user, reason="password_reset", revoke_tokens=False)
            audit_record(
                actor=None,
                action=AuditAction.AUTH_PASSWORD_RESET,
                target=user,
                extra={"sessions_ended": ended},
                request=request,
            )
            return user
    raise InvalidLink(
        action=AuditAction.AUTH_PASSWORD_RESET_REFUSED, reason="invalid", request=request
    )


# --- Lockouts -----------------------------------------------------------------
@action
def lockout_lift(
    *,
    actor: User,
    username: str | None = None,
    ip_address: str | None = None,
    request: HttpRequest | None = None,
) -> int:
    """Clear the failure counts of a username and/or an address; returns the rows cleared.

    Nobody lifts their own lockout, by name or by the address it came from (``self``:
    the usernames an address's records name are read first). The record names every
    username cleared. The right is checked again under the actor's row lock.
    """
    ensure_permission(
        actor=actor, permission="accounts.manage_lockouts",
        operation="lockout.lift", request=request,
    )  # fmt: skip
    if not username and not ip_address:
        raise ValidationError("Name a username or an address.")
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[], permission="accounts.manage_lockouts",
            operation="lockout.lift", request=request,
        )  # fmt: skip
        attempts = AccessAttempt.objects.all()
        if username:
            attempts = attempts.filter(username=username)
        if ip_address:
            attempts = attempts.filter(ip_address=ip_address)
        usernames = sorted({name for name in attempts.values_list("username", flat=True) if name})
        if actor.username in usernames or username == actor.username:
            ensure_not_self(actor=actor, user=actor, operation="lockout.lift", request=request)
        cleared = int(
            AxesProxyHandler.reset_attempts(ip_address=ip_address, username=username) or 0
        )
        audit_record(
            actor=actor,
            action=AuditAction.AUTH_LOCKOUT_LIFTED,
            extra={
                "username": username,
                "ip_address": ip_address,
                "records": cleared,
                "usernames": usernames,
            },
            request=request,
        )
    return cleared
