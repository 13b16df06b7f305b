"""Reads for accounts, scoped to the user who asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import QuerySet, Sum
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts.credentials import sha256_hex
from accounts.models import (
    ApiToken,
    BackupCode,
    BackupCodeDevice,
    BootstrapToken,
    FederatedIdentity,
    Invitation,
    ProviderMfaDevice,
    User,
    UserSession,
)
from accounts.roles import Role
from safechat.unicode_text import username_lookup_form

# Roles that are read-only on chat: their holders never post or manage in a room.
CHAT_READ_ONLY_ROLES = frozenset({Role.COMPLIANCE_OFFICER.value})

FACTOR_KINDS: dict[type[Device], str] = {
    TOTPDevice: "totp",
    BackupCodeDevice: "backup_codes",
    WebAuthnCredential: "passkey",
    # A trusted provider's multi-factor sign-in (docs/sso.md): what a session was verified
    # with, never one of the person's own factors (not listed, not counted, not removable).
    ProviderMfaDevice: "provider_mfa",
}
# Factors that stand on their own; backup codes only back one of these up.
PRIMARY_FACTOR_MODELS: tuple[type[Device], ...] = (TOTPDevice, WebAuthnCredential)


def factor_kind(device: Device) -> str:
    """The factor's kind as recorded ("totp", "passkey"...): for audit records and code."""
    return FACTOR_KINDS.get(type(device), type(device).__name__.lower())


# How people read each kind (the factors page, the admin): never the stored value.
FACTOR_KIND_LABELS: dict[str, str] = {
    "totp": "Authenticator app (one-time codes)",
    "backup_codes": "Backup codes",
    "passkey": "Passkey",
    "provider_mfa": "Sign-in provider's second factor",
}


def factor_kind_label(device: Device) -> str:
    """The factor's kind as people read it ("Authenticator app (one-time codes)")."""
    kind = factor_kind(device)
    return FACTOR_KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def user_factors(*, user: User) -> list[Device]:
    """The user's confirmed second factors, in a stable order (their own: never the record
    of a provider's multi-factor sign-in)."""
    found = devices_for_user(user, confirmed=True)
    own = (d for d in found if not isinstance(d, ProviderMfaDevice))
    return sorted(own, key=lambda d: (factor_kind(d), d.pk))


def user_has_factor(*, user: User) -> bool:
    return any(m.objects.filter(user=user, confirmed=True).exists() for m in PRIMARY_FACTOR_MODELS)


def user_primary_factor_count(*, user: User) -> int:
    return sum(m.objects.filter(user=user, confirmed=True).count() for m in PRIMARY_FACTOR_MODELS)


def user_factor_get(*, user: User, persistent_id: str, code_based: bool = False) -> Device | None:
    """One confirmed factor of ``user`` by persistent id (never another user's)."""
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    if isinstance(device, ProviderMfaDevice):
        return None
    if code_based and not isinstance(device, TOTPDevice | BackupCodeDevice):
        return None
    return device


def backup_codes_remaining(*, user: User) -> int:
    return BackupCode.objects.filter(
        device__user=user, device__confirmed=True, used_at__isnull=True
    ).count()


def user_sessions_active(*, user: User) -> QuerySet[UserSession]:
    return UserSession.objects.filter(user=user, ended_at__isnull=True).order_by("-last_seen_at")


def user_session_get(*, user: User, session_id: int) -> UserSession | None:
    return user_sessions_active(user=user).filter(pk=session_id).first()


def api_tokens_for(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def api_token_get(*, user: User, token_id: int) -> ApiToken | None:
    return api_tokens_for(user=user).filter(pk=token_id).first()


def people() -> QuerySet[User]:
    """Accounts of people: without django-guardian's internal anonymous user row."""
    from guardian.conf import settings as guardian_settings

    return User.objects.exclude(username=guardian_settings.ANONYMOUS_USER_NAME)


def people_exist() -> bool:
    return people().exists()


def people_active() -> QuerySet[User]:
    """The people anyone may pick (a member to add, a participant, a role holder).

    The one selector every path that picks users goes through (portal forms, API
    views, services): active accounts of people only, never django-guardian's internal
    anonymous user row, so that row can never become a member or get a key pair.
    """
    return people().filter(is_active=True)


def person_active_get(*, user_id: int | None = None, username: str | None = None) -> User | None:
    """The active person with ``user_id`` (or ``username``), or None if there is none."""
    if user_id is None and username is None:
        return None
    found = people_active()
    if user_id is not None:
        found = found.filter(pk=user_id)
    if username is not None:
        found = found.filter(username=username_lookup_form(username))
    return found.first()


def person_get(*, user_id: int) -> User | None:
    """The account of a person (active or not) with ``user_id``, or None: for paths that
    name someone already in a room (removal, a role change)."""
    return people().filter(pk=user_id).first()


def person_get_by_username(*, username: str) -> User | None:
    """The account of a person (active or not) named ``username`` in any case or width
    (looked up in its PRECIS form), or None."""
    return people().filter(username=username_lookup_form(username.strip())).first()


def user_reads_chat_only(*, user: User) -> bool:
    """Whether ``user`` holds a role that is read-only on chat (the compliance officer).

    The one rule for it: such a person is never a member with post or manage rights,
    creates no room or direct conversation and is added to none; they review content
    through the compliance tools. ``rooms`` checks it in its services.
    """
    return user.groups.filter(name__in=CHAT_READ_ONLY_ROLES).exists()


def bootstrap_token_valid(*, token: str) -> bool:
    """Whether ``token`` is an unused, unexpired bootstrap link and nobody has an account yet."""
    return (
        BootstrapToken.objects.filter(
            token_hash=sha256_hex(token), used_at__isnull=True, expires_at__gt=timezone.now()
        ).exists()
        and not people_exist()
    )


def _invitations_open() -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def invitation_valid(*, token: str) -> Invitation | None:
    """The invitation ``token`` stands for, if it is unused, unrevoked and unexpired; else
    None (``invitation_accept`` decides again, under its locks)."""
    return _invitations_open().filter(token_hash=sha256_hex(token)).first()


def invitations_pending(*, actor: User) -> QuerySet[Invitation]:
    """The invitations still waiting for their invitee (not accepted, not revoked, not
    expired), newest first, with who sent them (``invited_by``): for holders of
    ``accounts.view_user`` only, nothing for anyone else. Never their link (only its hash
    is stored)."""
    if not actor.has_perm("accounts.view_user"):
        return Invitation.objects.none()
    return _invitations_open().select_related("invited_by").order_by("-created_at", "-pk")


def invitation_for_revoke(*, invitation_id: int) -> Invitation | None:
    """The invitation ``invitation_id`` names, in any state, or None: only for
    ``services.invitation_revoke``, which checks the actor's right before it answers
    either (so an id tells nothing to someone without it)."""
    return Invitation.objects.filter(pk=invitation_id).first()


def users_for_admin(*, actor: User) -> QuerySet[User]:
    """Every account, for holders of ``accounts.view_user`` only."""
    if not actor.has_perm("accounts.view_user"):
        return User.objects.none()
    return people().order_by("username").prefetch_related("groups")


def user_roles(*, user: User) -> list[Role]:
    """The roles ``user`` holds, by identifier (a group that is no role is left out);
    each one's ``label`` is what the portal shows."""
    names = {r.value for r in Role}
    return sorted(Role(g.name) for g in user.groups.all() if g.name in names)


@dataclass(frozen=True)
class Lockout:
    username: str | None
    ip_address: str | None
    failures: int
    last_attempt: datetime


def lockouts_active(*, actor: User) -> list[Lockout]:
    """Usernames and addresses at or above the failure limit, for lockout managers only."""
    if not actor.has_perm("accounts.manage_lockouts"):
        return []
    limit = settings.AXES_FAILURE_LIMIT
    recent = AccessAttempt.objects.all()
    if settings.AXES_COOLOFF_TIME:
        recent = recent.filter(
            attempt_time__gte=timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME)
        )
    result: list[Lockout] = []
    for field in ("username", "ip_address"):
        rows = (
            recent.exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(total=Sum("failures_since_start"))
            .filter(total__gte=limit)
        )
        for row in rows:
            last = recent.filter(**{field: row[field]}).order_by("-attempt_time").first()
            result.append(
                Lockout(
                    username=row[field] if field == "username" else None,
                    ip_address=row[field] if field == "ip_address" else None,
                    failures=int(row["total"]),
                    last_attempt=last.attempt_time if last else timezone.now(),
                )
            )
    return result


def federated_identities(*, user: User | None = None) -> QuerySet[FederatedIdentity]:
    """Links between accounts and identity providers (of ``user``, or everyone's), for the
    security admins' page; newest first."""
    found = FederatedIdentity.objects.select_related("user").order_by("-created_at", "-pk")
    return found if user is None else found.filter(user=user)


def federated_identity_find(*, issuer: str, subject: str) -> FederatedIdentity | None:
    """The link of (``issuer``, ``subject``), exactly as the provider sent them, or None."""
    return (
        FederatedIdentity.objects.select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
