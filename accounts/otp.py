"""The second factor, checked where django-otp's middleware does not run (WebSockets)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from accounts.session_policy import SESSION_REVERIFIED_AT


def request_verified(request: Any) -> bool:
    """Whether the request's user has passed a second factor in this session
    (django-otp's ``OTPMiddleware`` sets ``is_verified``; anonymous users lack it)."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


def recently_reverified(session: Any, *, now: float | None = None) -> bool:
    """Whether a second factor was entered within ``SAFECHAT_REVERIFY_SECONDS``."""
    now = time.time() if now is None else now
    at = session.get(SESSION_REVERIFIED_AT)
    return isinstance(at, int | float) and 0 <= now - at <= settings.SAFECHAT_REVERIFY_SECONDS
