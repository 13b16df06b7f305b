"""The second factor and the session policy, checked where django-otp's middleware does not run.

Also the session bookkeeping keys shared by the HTTP middleware, the services
and the WebSocket consumer, so that all three apply one policy.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from accounts.credentials import sha256_hex
from accounts.models import User, UserSession

SESSION_AUTH_AT = "safechat.auth_at"  # epoch seconds of the password step
SESSION_SEEN_AT = "safechat.seen_at"  # epoch seconds of the last request
SESSION_REVERIFIED_AT = "safechat.reverified_at"  # epoch seconds of the last second factor
SESSION_SIGNED_OUT_REASON = "safechat.signed_out_reason"


def request_verified(request: Any) -> bool:
    """Whether the request's user has passed a second factor in this session
    (django-otp's ``OTPMiddleware`` sets ``is_verified``; anonymous users lack it)."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


def session_key_hash(session_key: str) -> str:
    """What we store and name groups by: never the session key itself."""
    return sha256_hex(f"session:{session_key}")


def session_expiry_reason(session: Any, *, now: float | None = None) -> str | None:
    """``"idle"`` or ``"absolute"`` if the session's time is up, else None."""
    now = time.time() if now is None else now
    auth_at = session.get(SESSION_AUTH_AT)
    seen_at = session.get(SESSION_SEEN_AT)
    if not isinstance(auth_at, int | float) or not isinstance(seen_at, int | float):
        return "absolute"  # not started by our sign-in: treat as expired
    if now - auth_at > settings.SESSION_COOKIE_AGE:
        return "absolute"
    if now - seen_at > settings.SAFECHAT_SESSION_IDLE_SECONDS:
        return "idle"
    return None


def active_user_session(*, user: User | AnonymousUser, session: Any) -> UserSession | None:
    """The live :class:`UserSession` row behind ``session``, or None if ended, expired or absent."""
    if not user.is_authenticated or session is None or not session.session_key:
        return None
    if session_expiry_reason(session) is not None:
        return None
    return UserSession.objects.filter(
        key_hash=session_key_hash(session.session_key), user_id=user.pk, ended_at__isnull=True
    ).first()


def verified_device_for(*, user: User | AnonymousUser, session: Any) -> Device | None:
    """The confirmed device this session verified with, or None.

    Mirrors ``django_otp.middleware.OTPMiddleware`` for WebSocket scopes: a device
    that was removed, unconfirmed or belongs to someone else does not count, and
    neither does a session that was ended, or is past its idle or absolute limit.
    """
    if not user.is_authenticated or session is None or not user.is_active:
        return None
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return None
    device = Device.from_persistent_id(persistent_id, for_verify=False)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    if active_user_session(user=user, session=session) is None:
        return None
    return device


def recently_reverified(session: Any, *, now: float | None = None) -> bool:
    """Whether a second factor was entered within ``SAFECHAT_REVERIFY_SECONDS``."""
    now = time.time() if now is None else now
    at = session.get(SESSION_REVERIFIED_AT)
    return isinstance(at, int | float) and 0 <= now - at <= settings.SAFECHAT_REVERIFY_SECONDS
