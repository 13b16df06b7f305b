"""Sign-in: the password step, the second-factor step, and sign-out.

Throttling: django-axes counts password *and* code failures per username and
per IP (one lockout a security admin lifts); django-otp throttles each device.
"""

from __future__ import annotations

import logging
import time

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import authenticate, login
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.models import Device

from accounts.factor_ids import persistent_id_names_a_device
from accounts.models import User, UserSession
from accounts.password_policy import break_glass, local_passwords_enabled
from accounts.roles import Role
from accounts.selectors import factor_kind, user_factor_get
from accounts.services._common import failure_count
from accounts.services.sessions import session_end_current, session_rotate, session_start
from accounts.session_policy import SESSION_REVERIFIED_AT, request_verified, session_key_hash
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import action, action_transaction
from safechat.unicode_text import username_lookup_form

logger = logging.getLogger("safechat.security")
GENERIC_FAILURE = "Those details were not accepted. Check them and try again."
LOCKED_OUT = "Too many failed attempts. Try again later, or ask a security administrator to unlock."
CODE_FAILURE = "That code was not accepted. Check it and try again."
DEVICE_THROTTLED = "Too many wrong codes for this factor. Wait a moment or use another factor."


class SignInError(Exception):
    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.locked = locked


def _credentials(username: str) -> dict[str, str]:
    return {"username": username}


@action
def sign_in_password(*, request: HttpRequest, username: str, password: str) -> User:
    """The password step. Unknown users, wrong passwords and inactive accounts get one answer.

    Django's ModelBackend hashes the password with the default hasher for an
    unknown username too, so the timing does not tell them apart either.

    With local passwords off (``SAFECHAT_LOCAL_PASSWORDS``), a right password signs in
    only a break-glass account (``SAFECHAT_BREAK_GLASS_USERNAMES``); anyone else's is
    answered as a wrong one (recorded ``auth.login.failed`` with ``reason:
    local_passwords_disabled``), so the answer tells no one which accounts are
    break-glass. A break-glass sign-in is recorded ``auth.break_glass.used`` and every
    active security admin with an address is mailed after commit (and it is logged at
    CRITICAL); its second factor is still due.
    """
    # Typed in any case or width, counted and looked up in its canonical form (RFC 8265).
    username = username_lookup_form(username.strip()[:150])
    was_locked = AxesProxyHandler.is_locked(request, _credentials(username))
    user = authenticate(request, username=username, password=password)
    glass = not local_passwords_enabled() and break_glass(username)
    if isinstance(user, User) and not (local_passwords_enabled() or glass):
        with action_transaction():
            audit_record(
                actor=None,
                action=AuditAction.AUTH_LOGIN_FAILED,
                target=user,
                extra={
                    "username": username, "step": "password", "locked": False,
                    "reason": "local_passwords_disabled",
                },
                request=request,
            )  # fmt: skip
        raise SignInError(GENERIC_FAILURE)
    if not isinstance(user, User):
        locked = bool(getattr(request, "axes_locked_out", False)) or was_locked
        known = User.objects.filter(username=username).first()
        # What was typed is kept only when it names an account: people type passwords
        # into the username field, and the audit log keeps everything for good.
        typed = username if known is not None else None
        with action_transaction():
            audit_record(
                actor=None,
                action=AuditAction.AUTH_LOGIN_FAILED,
                target=known,
                extra={"username": typed, "step": "password", "locked": locked},
                request=request,
            )
            if locked and not was_locked:
                audit_record(
                    actor=None,
                    action=AuditAction.AUTH_LOCKOUT,
                    target=known,
                    extra={"username": typed, "step": "password"},
                    request=request,
                )
        raise SignInError(LOCKED_OUT if locked else GENERIC_FAILURE, locked=locked)
    with action_transaction():
        login(request, user)  # a fresh session key
        session_start(request=request, user=user)
        audit_record(
            actor=user,
            action=AuditAction.AUTH_PASSWORD_VERIFIED,
            target=user,
            request=request,
        )
        if glass:
            audit_record(
                actor=user,
                action=AuditAction.AUTH_BREAK_GLASS_USED,
                target=user,
                extra={"step": "password"},
                request=request,
            )
            transaction.on_commit(lambda: _break_glass_alert(user=user))
    return user


def _break_glass_alert(*, user: User) -> None:
    """Tell every active security admin (and the log, at CRITICAL) that a break-glass
    account's password was used: the identity provider may be down, or someone has it."""
    logger.critical("break-glass account %s signed in with its password", user.pk)
    recipients = sorted(
        User.objects.filter(groups__name=Role.SECURITY_ADMIN.value, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    if recipients:
        send_mail(
            "SafeChat: break-glass account used",
            f"The break-glass account {user.get_username()} signed in with its password at "
            f"{timezone.now():%Y-%m-%d %H:%M} UTC (its second factor is still due). If this "
            "was not planned, end its sessions and change its password now.\n",
            None,
            recipients,
        )


def second_factor_accepted(*, request: HttpRequest, user: User, device: Device) -> None:
    """Mark the session verified with ``device`` (call inside the verifying transaction).

    The first verification of a session completes the sign-in and rotates the
    session key; a later one is a re-verification that authorises factor changes.
    """
    was_verified = request_verified(request)
    otp_login(request, device)
    request.session[SESSION_REVERIFIED_AT] = time.time()
    if not was_verified:
        session_rotate(request=request)
    key = request.session.session_key
    if key is None:
        raise RuntimeError("the session has no key after rotation")
    UserSession.objects.filter(key_hash=session_key_hash(key)).update(
        device_id=device.persistent_id,
        **({} if was_verified else {"verified_at": timezone.now()}),
    )
    audit_record(
        actor=user,
        action=AuditAction.AUTH_OTP_VERIFIED if was_verified else AuditAction.AUTH_LOGIN_SUCCEEDED,
        target=user,
        extra={"factor": factor_kind(device), "device": device.pk},
        request=request,
    )
    if not was_verified:
        # A complete sign-in clears the username's failure count (never the password step).
        AxesProxyHandler.reset_attempts(username=user.username)


@action
def second_factor_failed(
    *, request: HttpRequest, user: User, device: Device | None, reason: str
) -> SignInError:
    """Count and record a refused second factor; returns the error to raise."""
    with action_transaction():
        audit_record(
            actor=user,
            action=AuditAction.AUTH_OTP_FAILED,
            target=user,
            extra={
                "factor": factor_kind(device) if device else "unknown",
                "device": device.pk if device else None,
                "reason": reason,
            },
            request=request,
        )
    if reason == "locked":
        return SignInError(LOCKED_OUT, locked=True)
    if failure_count(request=request, user=user, step="second_factor", sender=second_factor_failed):
        return SignInError(LOCKED_OUT, locked=True)
    return SignInError(DEVICE_THROTTLED if reason == "throttled" else CODE_FAILURE)


@action
def second_factor_verify(*, request: HttpRequest, user: User, device_id: str, code: str) -> Device:
    """Verify a TOTP or backup code against one of the user's factors.

    The device row is locked (``select_for_update``) for the check, so a code is
    accepted once: a replay, or two parallel submissions, find ``last_t`` moved
    (TOTP) or the code already consumed (backup codes).
    """
    if AxesProxyHandler.is_locked(request, _credentials(user.username)):
        raise second_factor_failed(request=request, user=user, device=None, reason="locked")
    device = (
        user_factor_get(user=user, persistent_id=device_id, code_based=True)
        if persistent_id_names_a_device(device_id)
        else None
    )
    if device is None:
        raise second_factor_failed(request=request, user=user, device=None, reason="unknown_device")
    code = code.strip()[:64]
    with action_transaction():
        locked = type(device).objects.select_for_update().get(pk=device.pk)
        allowed, _ = locked.verify_is_allowed()
        if allowed and locked.verify_token(code):
            second_factor_accepted(request=request, user=user, device=locked)
            return locked
    raise second_factor_failed(
        request=request, user=user, device=device, reason="wrong_code" if allowed else "throttled"
    )


@action
def sign_out(*, request: HttpRequest, provider_logout: str = "") -> None:
    """End this session (its sockets close after commit) and clear it. ``provider_logout``
    names the OpenID Connect provider the browser is sent on to, to end its session too
    (recorded in ``auth.logout`` as ``provider_logout``)."""
    session_end_current(request=request, reason="signed_out", provider_logout=provider_logout)
