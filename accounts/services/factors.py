"""Second factors: enrol, rename, remove, backup codes, and an administrator's reset.

Every change by the user needs a recent re-verification (``accounts.session_policy``),
except enrolling the very first factor during the forced enrolment.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts.credentials import backup_code_hash, new_backup_codes, new_salt
from accounts.models import BackupCode, BackupCodeDevice, User, UserSession
from accounts.selectors import (
    PRIMARY_FACTOR_MODELS,
    factor_kind,
    user_has_factor,
    user_primary_factor_count,
)
from accounts.services._common import (
    actor_and_people_locked,
    ensure_not_self,
    ensure_permission,
    ensure_person,
)
from accounts.services.auth import CODE_FAILURE, SignInError, second_factor_accepted
from accounts.services.sessions import credentials_bump, session_hold, sessions_end_rows
from accounts.session_policy import recently_reverified, request_verified
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import action, action_transaction

REVERIFY_NEEDED = "Confirm it is you: enter a current second factor first."


class ReverificationRequired(Exception):
    """The change needs a second factor entered within the last few minutes."""


def factor_change_allowed(*, request: HttpRequest, user: User) -> bool:
    """First enrolment needs no re-verification; every later change does."""
    if not user_has_factor(user=user):
        return True
    return recently_reverified(request.session)


def _ensure_change_allowed(*, request: HttpRequest, user: User) -> None:
    if not factor_change_allowed(request=request, user=user):
        raise ReverificationRequired(REVERIFY_NEEDED)


@action
def totp_enrolment_device(*, user: User) -> TOTPDevice:
    """The user's pending (unconfirmed) TOTP device, created on first call.

    Unconfirmed devices never verify a sign-in; confirming one is the audited act.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


@action
def totp_enrol_confirm(
    *, request: HttpRequest, user: User, device: TOTPDevice, code: str, name: str
) -> TOTPDevice:
    """Confirm a pending TOTP device with a first code from the app."""
    _ensure_change_allowed(request=request, user=user)
    # A wrong code commits like a right one: its audit event and django-otp's throttle
    # count must survive, or the enrolment code could be guessed without a trace.
    with action_transaction():
        session_hold(request=request, user=user)  # the user row first; the session still good
        locked = TOTPDevice.objects.select_for_update().get(
            pk=device.pk, user=user, confirmed=False
        )
        accepted = locked.verify_token(code.strip()[:16])
        if accepted:
            locked.confirmed = True
            locked.name = name.strip()[:64] or "Authenticator app"
            locked.save(update_fields=["confirmed", "name"])
            factor_added(request=request, user=user, device=locked)
        else:
            audit_record(
                actor=user,
                action=AuditAction.AUTH_OTP_FAILED,
                target=user,
                extra={"factor": "totp", "device": locked.pk, "reason": "enrolment_code"},
                request=request,
            )
    if not accepted:
        raise SignInError(CODE_FAILURE)
    return locked


def factor_added(*, request: HttpRequest, user: User, device: Device) -> None:
    """Record a confirmed factor (inside the caller's transaction).

    During forced enrolment the new factor also verifies the session: the user
    has just proven they hold it.
    """
    audit_record(
        actor=user,
        action=AuditAction.FACTOR_ADDED,
        target=user,
        extra={"factor": factor_kind(device), "device": device.pk},
        request=request,
    )
    if not request_verified(request):
        second_factor_accepted(request=request, user=user, device=device)


@action
def passkey_registration_failed(*, request: HttpRequest, user: User, reason: str) -> None:
    """Record a passkey that could not be registered, as a wrong first TOTP code is."""
    with action_transaction():
        audit_record(
            actor=user,
            action=AuditAction.AUTH_OTP_FAILED,
            target=user,
            extra={"factor": "webauthn", "reason": "registration", "error": reason[:64]},
            request=request,
        )


@action
def backup_codes_generate(*, request: HttpRequest, user: User) -> list[str]:
    """Replace the user's backup codes; returns the new codes, which are never stored in clear."""
    _ensure_change_allowed(request=request, user=user)
    if not user_has_factor(user=user):
        raise ReverificationRequired("Add an authenticator app or a passkey first.")
    codes = new_backup_codes(settings.SAFECHAT_BACKUP_CODE_COUNT)
    with action_transaction():
        device = BackupCodeDevice.objects.select_for_update().filter(user=user).first()
        if device is None:
            device = BackupCodeDevice.objects.create(
                user=user, name="Backup codes", confirmed=True, salt=new_salt()
            )
        else:
            device.codes.all().delete()
            device.salt = new_salt()
            device.confirmed = True
            device.save(update_fields=["salt", "confirmed"])
        BackupCode.objects.bulk_create(
            BackupCode(device=device, code_hash=backup_code_hash(salt=device.salt, code=c))
            for c in codes
        )
        audit_record(
            actor=user,
            action=AuditAction.FACTOR_BACKUP_CODES_GENERATED,
            target=user,
            extra={"count": len(codes)},
            request=request,
        )
    return codes


@action
def factor_rename(*, request: HttpRequest, user: User, device: Device, name: str) -> None:
    _ensure_change_allowed(request=request, user=user)
    name = name.strip()[:64]
    if not name:
        raise ValidationError("A name is required.")
    with action_transaction():
        locked = type(device).objects.select_for_update().get(pk=device.pk, user=user)
        old = locked.name
        locked.name = name
        locked.save(update_fields=["name"])
        audit_record(
            actor=user,
            action=AuditAction.FACTOR_RENAMED,
            target=user,
            extra={"factor": factor_kind(locked), "device": locked.pk, "from": old, "to": name},
            request=request,
        )


class LastFactor(Exception):
    """Removing this factor would leave the account without one."""


@action
def factor_remove(*, request: HttpRequest, user: User, device: Device) -> None:
    """Remove a factor; the last authenticator or passkey stays until another is added.

    Sessions verified with the removed factor end, and their sockets close.
    """
    _ensure_change_allowed(request=request, user=user)
    if request.session.get(DEVICE_ID_SESSION_KEY) == device.persistent_id:
        raise LastFactor(
            "This session was verified with that factor. Confirm with another factor first."
        )
    with action_transaction():
        User.objects.select_for_update(no_key=True).get(
            pk=user.pk
        )  # serialise factor changes per user
        if isinstance(device, PRIMARY_FACTOR_MODELS) and user_primary_factor_count(user=user) <= 1:
            raise LastFactor("Add another authenticator app or passkey before removing this one.")
        locked = type(device).objects.select_for_update().get(pk=device.pk, user=user)
        persistent_id = locked.persistent_id
        kind = factor_kind(locked)
        locked.delete()
        rows = list(
            UserSession.objects.select_for_update().filter(
                user=user, ended_at__isnull=True, device_id=persistent_id
            )
        )
        sessions_end_rows(rows=rows, reason="factor_removed")
        audit_record(
            actor=user,
            action=AuditAction.FACTOR_REMOVED,
            target=user,
            extra={"factor": kind, "device": device.pk, "sessions_ended": len(rows)},
            request=request,
        )


@action
def factors_reset(*, actor: User, user: User, request: HttpRequest | None = None) -> int:
    """A security admin removes every factor of ``user``; their sessions end at once.

    At the next sign-in the user must enrol again before anything else.
    """
    ensure_permission(
        actor=actor, permission="accounts.manage_factors", target=user,
        operation="factor.reset", request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, operation="factor.reset", request=request)
    ensure_not_self(actor=actor, user=user, operation="factor.reset", request=request)
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[user], permission="accounts.manage_factors", target=user,
            operation="factor.reset", request=request,
        )  # fmt: skip
        removed = 0
        for model in (TOTPDevice, WebAuthnCredential, BackupCodeDevice):
            devices = model.objects.filter(user=user)
            removed += devices.count()
            devices.delete()
        ended, revoked = credentials_bump(user=user, reason="factors_reset", revoke_tokens=True)
        audit_record(
            actor=actor,
            action=AuditAction.FACTOR_RESET,
            target=user,
            extra={"devices": removed, "sessions_ended": ended, "tokens_revoked": revoked},
            request=request,
        )
    return removed
