"""The second factor, checked where django-otp's middleware does not run."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from accounts.models import User


def verified_device_for(*, user: User | AnonymousUser, session: Any) -> Device | None:
    """The confirmed device this session verified with, or None.

    Mirrors ``django_otp.middleware.OTPMiddleware`` for WebSocket scopes: a device
    that was removed, unconfirmed or belongs to someone else does not count.
    """
    if not user.is_authenticated or session is None:
        return None
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return None
    device = Device.from_persistent_id(persistent_id, for_verify=False)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    return device
