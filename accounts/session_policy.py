"""The session policy: one verdict, re-derived from the database, for requests and sockets.

A session may act only while every one of these holds, each read from its row and its
user's row at the moment of the check (never remembered from sign-in or connect time):

* its :class:`~accounts.models.UserSession` row exists and is not ended;
* its user is active;
* the row's credential epoch equals the user's (a password change or reset, a factor
  reset or a deactivation bumps the user's, so every session issued before it stops);
* it is within its absolute limit (``SAFECHAT_SESSION_ABSOLUTE_SECONDS`` since the
  password step, ``row.created_at``) and its idle limit (``SAFECHAT_SESSION_IDLE_SECONDS``
  since the person's last activity, ``row.last_seen_at``, moved by HTTP requests and by
  socket frames a person sends, never by keepalive pings);
* for a socket: it passed the second factor (``row.device_id``); removing that factor
  ends the session (``accounts.services.factors``).

The row, not the signed cookie, holds both clocks, so a socket and the pages of one
session share them. The HTTP middleware, the WebSocket consumer and the token check all
apply this module; nothing else decides whether a session lives.

An API token has its own verdict (``token_refusal_reason``): one rule for its
authentication and for every check again while a use of it lasts (a download).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from accounts.credentials import sha256_hex
from accounts.models import ApiToken, User, UserSession

SESSION_REVERIFIED_AT = "safechat.reverified_at"  # epoch seconds of the last second factor
SESSION_SIGNED_OUT_REASON = "safechat.signed_out_reason"

# Why a session stops; also the ``end_reason`` recorded on its row.
ENDED = "ended"
DEACTIVATED = "deactivated"
CREDENTIALS_CHANGED = "credentials_changed"
IDLE = "idle"
ABSOLUTE = "absolute"
UNVERIFIED = "unverified"
UNAVAILABLE = "unavailable"  # the database could not be asked: fail closed


# What a socket and the sign-in page are told, by the ``end_reason`` of a row that a
# service ended (accounts.services): the documented reasons, not the services' own words.
END_REASONS = {
    "idle": IDLE,
    "absolute": ABSOLUTE,
    "deactivated": DEACTIVATED,
    "password_changed": CREDENTIALS_CHANGED,
    "password_reset": CREDENTIALS_CHANGED,
    "factors_reset": CREDENTIALS_CHANGED,
    "factor_removed": CREDENTIALS_CHANGED,
}


def session_key_hash(session_key: str) -> str:
    """What we store and look sessions up by: never the session key itself."""
    return sha256_hex(f"session:{session_key}")


def touch_interval() -> float:
    """Seconds between writes of ``last_seen_at``: a thirtieth of the idle limit, at most 60.

    Writing on every request or frame would turn every read into a write; writing
    rarely would let the idle clock lag real activity. The lag is at most this long.
    """
    return min(60.0, float(settings.SAFECHAT_SESSION_IDLE_SECONDS) / 30)


@dataclass(frozen=True)
class SessionVerdict:
    """Whether a session may act now, and until when at most.

    ``reason`` is None when allowed, else one of the module's reasons. Deadlines are
    epoch seconds; both are 0.0 when the session is refused.
    """

    reason: str | None
    row: UserSession | None
    idle_deadline: float = 0.0
    absolute_deadline: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def user(self) -> User:
        """The user as read with this verdict (only for an allowed verdict)."""
        if self.row is None:
            raise ValueError("a refused verdict has no user")
        user: User = self.row.user
        return user

    @property
    def deadline(self) -> float:
        return min(self.idle_deadline, self.absolute_deadline)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def session_verdict_of(
    row: UserSession | None, *, require_factor: bool, now: float | None = None
) -> SessionVerdict:
    """The verdict on ``row`` (loaded with its user, ``select_related("user")``).

    ``require_factor``: refuse a session that has not passed the second factor (sockets,
    which django-otp's middleware does not cover). Pure: reads only its arguments.
    """
    now = time.time() if now is None else now
    if row is None:
        return SessionVerdict(reason=ENDED, row=row)
    if row.ended_at is not None:
        return SessionVerdict(reason=END_REASONS.get(row.end_reason, ENDED), row=row)
    user: User = row.user
    if not user.is_active:
        return SessionVerdict(reason=DEACTIVATED, row=row)
    if row.credential_epoch != user.credential_epoch:
        return SessionVerdict(reason=CREDENTIALS_CHANGED, row=row)
    if require_factor and not row.device_id:
        return SessionVerdict(reason=UNVERIFIED, row=row)
    absolute_deadline = _epoch(row.created_at) + settings.SESSION_COOKIE_AGE
    idle_deadline = _epoch(row.last_seen_at) + settings.SAFECHAT_SESSION_IDLE_SECONDS
    if now >= absolute_deadline:
        return SessionVerdict(reason=ABSOLUTE, row=row)
    if now >= idle_deadline:
        return SessionVerdict(reason=IDLE, row=row)
    return SessionVerdict(
        reason=None, row=row, idle_deadline=idle_deadline, absolute_deadline=absolute_deadline
    )


def session_verdict(
    *, session_id: int, user_id: int, require_factor: bool, now: float | None = None
) -> SessionVerdict:
    """The verdict on session row ``session_id`` of ``user_id``: one query."""
    row = UserSession.objects.select_related("user").filter(pk=session_id, user_id=user_id).first()
    return session_verdict_of(row, require_factor=require_factor, now=now)


def session_verdicts(
    *, session_ids: list[int], require_factor: bool, now: float | None = None
) -> dict[int, SessionVerdict]:
    """The verdict on each of ``session_ids`` (a missing row is ENDED), in one query per
    thousand ids: what a process's socket watch asks for all its sockets at once."""
    verdicts: dict[int, SessionVerdict] = {}
    for start in range(0, len(session_ids), 1000):
        chunk = session_ids[start : start + 1000]
        rows = UserSession.objects.select_related("user").filter(pk__in=chunk)
        found = {row.pk: row for row in rows}
        for session_id in chunk:
            verdicts[session_id] = session_verdict_of(
                found.get(session_id), require_factor=require_factor, now=now
            )
    return verdicts


def session_row_for(*, user: User | AnonymousUser, session: object) -> UserSession | None:
    """The row behind a Django session (by the hash of its key), with its user; or None."""
    session_key = getattr(session, "session_key", None)
    if not user.is_authenticated or not session_key:
        return None
    return (
        UserSession.objects.select_related("user")
        .filter(key_hash=session_key_hash(session_key), user_id=user.pk)
        .first()
    )


def session_touch_due(row: UserSession, *, now: float | None = None) -> bool:
    """Whether activity now should be written to the row (see :func:`touch_interval`)."""
    now = time.time() if now is None else now
    return now - _epoch(row.last_seen_at) >= touch_interval()


# --- API tokens ---------------------------------------------------------------------


def token_ancestor_revoked(*, token: ApiToken, now: datetime | None = None) -> bool:
    """Whether a token up ``token``'s line of parents is revoked or no longer usable
    (expired, or past its maximum life as it stands now): one query a level.

    Revocation revokes the live descendants in the same transaction; this re-derives
    it at every use all the same, so a token minted by one that may no longer act is
    never accepted, and a child never outlives its parent, whenever it was minted.
    """
    from django.utils import timezone

    now = timezone.now() if now is None else now
    oldest = now - timedelta(days=settings.SAFECHAT_TOKEN_MAX_DAYS)
    seen = {token.pk}
    parent_id = token.parent_id
    while parent_id is not None and parent_id not in seen:
        seen.add(parent_id)
        row = (
            ApiToken.objects.filter(pk=parent_id)
            .values_list("parent_id", "revoked_at", "expires_at", "created_at")
            .first()
        )
        if row is None:
            return False
        parent_id, revoked_at, expires_at, created_at = row
        if revoked_at is not None or expires_at <= now or created_at <= oldest:
            return True
    return False


def token_usable_until(token: ApiToken) -> datetime:
    """The end of ``token``'s life as it stands now: its expiry, or its maximum life
    (``SAFECHAT_TOKEN_MAX_DAYS`` since it was made) if that setting was lowered since."""
    return min(
        token.expires_at, token.created_at + timedelta(days=settings.SAFECHAT_TOKEN_MAX_DAYS)
    )


def token_refusal_reason(token: ApiToken, *, now: datetime) -> str | None:
    """Why ``token`` (loaded with its user) may not be used at ``now``, or None.

    In this order: ``revoked``, ``expired``, ``past_max_life`` (older than
    ``SAFECHAT_TOKEN_MAX_DAYS`` as it stands now: lowering it shortens the tokens already
    issued), ``inactive_user``, ``credentials_changed`` (the user's credential epoch moved:
    a password change or reset, a factor reset), ``ancestor_revoked``.
    """
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= now:
        return "expired"
    if token.created_at + timedelta(days=settings.SAFECHAT_TOKEN_MAX_DAYS) <= now:
        return "past_max_life"
    if not token.user.is_active:
        return "inactive_user"
    if token.credential_epoch != token.user.credential_epoch:
        return "credentials_changed"
    if token_ancestor_revoked(token=token, now=now):
        return "ancestor_revoked"
    return None


def credential_still_valid(
    *, user: User | AnonymousUser, session: object, token: ApiToken | None
) -> Callable[[], bool]:
    """A check, for a use that lasts (a download), that re-reads from the database
    whether the credential that began it still may act: the token's verdict
    (``token_refusal_reason``) for a token, else the session's (with the second factor).
    Nothing is remembered from the moment the use began."""
    if token is not None:
        token_id = token.pk

        def token_valid() -> bool:
            from django.utils import timezone

            row = ApiToken.objects.select_related("user").filter(pk=token_id).first()
            return row is not None and token_refusal_reason(row, now=timezone.now()) is None

        return token_valid

    def session_valid() -> bool:
        row = session_row_for(user=user, session=session)
        return session_verdict_of(row, require_factor=True).reason is None

    return session_valid


# --- the second factor, checked where django-otp's middleware does not run (sockets) ---


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
