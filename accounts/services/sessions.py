"""Browser sessions: start, rotate, touch, end; ending one closes its live sockets."""

from __future__ import annotations

import time

from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import realtime
from accounts.models import User, UserSession
from accounts.otp import SESSION_AUTH_AT, SESSION_SEEN_AT, session_key_hash
from accounts.services._common import client_ip, client_user_agent, ensure_permission
from audit.actions import AuditAction
from audit.services import audit_record

# Writing last-seen on every request would make every read a write.
TOUCH_INTERVAL_SECONDS = 60


def _current_key_hash(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    key = request.session.session_key
    if key is None:
        raise RuntimeError("the session could not be saved")
    return session_key_hash(key)


def session_start(*, request: HttpRequest, user: User) -> UserSession:
    """Record the session that ``django.contrib.auth.login`` just created (key already cycled)."""
    now = time.time()
    request.session[SESSION_AUTH_AT] = now
    request.session[SESSION_SEEN_AT] = now
    return UserSession.objects.create(
        user=user,
        key_hash=_current_key_hash(request),
        last_seen_at=timezone.now(),
        ip_address=client_ip(request),
        user_agent=client_user_agent(request),
    )


def session_rotate(*, request: HttpRequest) -> None:
    """Give the session a new key (at second-factor verification) and follow it in the row."""
    old_hash = _current_key_hash(request)
    request.session.cycle_key()
    UserSession.objects.filter(key_hash=old_hash).update(key_hash=_current_key_hash(request))


def session_touch(*, request: HttpRequest, row: UserSession) -> None:
    """Move the idle clock; the row is written at most once a minute."""
    now = time.time()
    seen = request.session.get(SESSION_SEEN_AT)
    if isinstance(seen, int | float) and now - seen < TOUCH_INTERVAL_SECONDS:
        return
    request.session[SESSION_SEEN_AT] = now
    UserSession.objects.filter(pk=row.pk).update(last_seen_at=timezone.now())


def sessions_end_rows(*, rows: list[UserSession], reason: str) -> None:
    now = timezone.now()
    UserSession.objects.filter(pk__in=[r.pk for r in rows]).update(ended_at=now, end_reason=reason)
    for row in rows:
        key_hash = row.key_hash
        transaction.on_commit(
            lambda key_hash=key_hash: realtime.session_ended(key_hash=key_hash, reason=reason)  # type: ignore[misc]
        )


def session_end(
    *, actor: User | None, session: UserSession, reason: str, request: HttpRequest | None = None
) -> None:
    """End one session: its next request is signed out and its sockets close after commit.

    A user ends their own sessions; anyone else needs ``accounts.manage_sessions``.
    """
    if actor is not None and actor.pk != session.user_id:
        ensure_permission(
            actor=actor,
            permission="accounts.manage_sessions",
            target=session.user,
            operation="session.end",
            request=request,
        )
    with transaction.atomic():
        row = UserSession.objects.select_for_update().get(pk=session.pk)
        if row.ended_at is not None:
            return
        sessions_end_rows(rows=[row], reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.SESSION_ENDED,
            target=row.user,
            extra={"session": row.key_hash[:12], "reason": reason},
            request=request,
        )


def session_end_current(*, request: HttpRequest, reason: str) -> None:
    """End the request's own session (sign-out, expiry) and flush it.

    A session already ended elsewhere is only flushed: its end was recorded then.
    """
    user = request.user if request.user.is_authenticated else None
    key = request.session.session_key
    with transaction.atomic():
        rows: list[UserSession] = []
        if key:
            rows = list(
                UserSession.objects.select_for_update().filter(
                    key_hash=session_key_hash(key), ended_at__isnull=True
                )
            )
            sessions_end_rows(rows=rows, reason=reason)
        if isinstance(user, User) and (rows or reason == "signed_out"):
            audit_record(
                actor=user if reason == "signed_out" else None,
                action=AuditAction.AUTH_LOGOUT
                if reason == "signed_out"
                else AuditAction.SESSION_ENDED,
                target=user,
                extra={"reason": reason},
                request=request,
            )
    logout(request)


def user_sessions_end(
    *,
    user: User,
    reason: str,
    except_key_hash: str | None = None,
) -> int:
    """End every live session of ``user`` (part of a caller's transaction); returns how many."""
    rows = list(UserSession.objects.select_for_update().filter(user=user, ended_at__isnull=True))
    rows = [r for r in rows if r.key_hash != except_key_hash]
    sessions_end_rows(rows=rows, reason=reason)
    if except_key_hash is None:
        # Also sockets whose session row was never recorded (defence in depth).
        transaction.on_commit(lambda: realtime.user_sessions_ended(user_id=user.pk, reason=reason))
    return len(rows)


def session_end_all(
    *, actor: User, user: User, reason: str = "ended_all", request: HttpRequest | None = None
) -> int:
    """End all sessions of ``user``; a security admin may do it for anyone (audited)."""
    if actor.pk != user.pk:
        ensure_permission(
            actor=actor,
            permission="accounts.manage_sessions",
            target=user,
            operation="session.end_all",
            request=request,
        )
    with transaction.atomic():
        ended = user_sessions_end(user=user, reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.SESSION_ENDED_ALL,
            target=user,
            extra={"count": ended, "reason": reason},
            request=request,
        )
    return ended
