"""Browser sessions and credentials: start, rotate, end, and the credential epoch.

Ending a session or changing a credential tells the user's live sockets to re-check
(``access.changed``, published after commit: ``safechat.events``); the sockets, the pages and the
API re-derive their right to act from the rows written here
(``accounts.session_policy``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import logout
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import ApiToken, FederatedIdentity, User, UserSession
from accounts.services._common import (
    actor_and_people_locked,
    client_ip,
    client_user_agent,
    ensure_permission,
    ensure_person,
)
from accounts.session_policy import session_key_hash
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.events import Event, publish


def _current_key_hash(request: HttpRequest) -> str:
    if not request.session.session_key:
        request.session.save()
    key = request.session.session_key
    if key is None:
        raise RuntimeError("the session could not be saved")
    return session_key_hash(key)


def session_start(
    *,
    request: HttpRequest,
    user: User,
    federated_identity: FederatedIdentity | None = None,
    federated_session_index: str = "",
) -> UserSession:
    """Record the session that ``django.contrib.auth.login`` just created (key already cycled).

    The row carries ``user``'s credential epoch as read when the password was checked,
    so a credential reset that commits in between leaves this session born ended. A
    federated sign-in also records its link and the provider's session index (at most
    255 characters), by which the provider's logout finds the session.
    """
    return UserSession.objects.create(
        user=user,
        key_hash=_current_key_hash(request),
        credential_epoch=user.credential_epoch,
        last_seen_at=timezone.now(),
        ip_address=client_ip(request),
        user_agent=client_user_agent(request),
        federated_identity=federated_identity,
        federated_session_index=federated_session_index[:255],
    )


def session_rotate(*, request: HttpRequest) -> None:
    """Give the session a new key (at second-factor verification) and follow it in the row."""
    old_hash = _current_key_hash(request)
    request.session.cycle_key()
    UserSession.objects.filter(key_hash=old_hash).update(key_hash=_current_key_hash(request))


@action
def session_touch(*, session_id: int, now: float | None = None) -> None:
    """Move the idle clock of a live session to ``now`` (epoch seconds; default: now).

    Never backwards, never on an ended row, and never on a session already past its
    idle or absolute limit (activity cannot revive one the policy has refused but not
    yet ended). Callers write it at most once per ``session_policy.touch_interval()``.
    """
    moment = timezone.now() if now is None else datetime.fromtimestamp(now, tz=UTC)
    UserSession.objects.filter(
        pk=session_id,
        ended_at__isnull=True,
        last_seen_at__lt=moment,
        last_seen_at__gt=moment - timedelta(seconds=settings.SAFECHAT_SESSION_IDLE_SECONDS),
        created_at__gt=moment - timedelta(seconds=settings.SESSION_COOKIE_AGE),
    ).update(last_seen_at=moment)


def sessions_end_rows(*, rows: list[UserSession], reason: str) -> None:
    """Mark ``rows`` ended (inside the caller's transaction, rows locked); their users'
    sockets re-check after commit."""
    now = timezone.now()
    UserSession.objects.filter(pk__in=[r.pk for r in rows]).update(ended_at=now, end_reason=reason)
    for user_id in sorted({row.user_id for row in rows}):
        publish(Event.ACCESS_CHANGED, to_user=user_id, reason=reason)


@action
def session_expire(*, session_id: int, reason: str) -> bool:
    """End a session that the policy refused (idle, absolute limit), found by a socket.

    Idempotent: a row already ended is left as it is and False is returned. The end is
    audited as ``session.ended`` with the system as actor.
    """
    with action_transaction():
        row = (
            UserSession.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=session_id, ended_at__isnull=True)
            .first()
        )
        if row is None:
            return False
        sessions_end_rows(rows=[row], reason=reason)
        audit_record(
            actor=None,
            action=AuditAction.SESSION_ENDED,
            target=row.user,
            extra={"session": row.key_hash[:12], "reason": reason},
        )
    return True


@action
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
    with action_transaction():
        if actor is not None and actor.pk != session.user_id:
            actor_and_people_locked(
                actor=actor, users=[session.user], permission="accounts.manage_sessions",
                target=session.user, operation="session.end", request=request,
            )  # fmt: skip
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


@action
def session_end_current(*, request: HttpRequest, reason: str, provider_logout: str = "") -> None:
    """End the request's own session (sign-out, expiry) and flush it. ``provider_logout``:
    the provider whose session a sign-out goes on to end (in the audit event).

    A session already ended elsewhere is only flushed: its end was recorded then.
    """
    user = request.user if request.user.is_authenticated else None
    key = request.session.session_key
    with action_transaction():
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
                extra={
                    "reason": reason,
                    **({"provider_logout": provider_logout} if provider_logout else {}),
                },
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
    if not rows:
        # Sockets re-check even when no row was live (defence in depth).
        publish(Event.ACCESS_CHANGED, to_user=user.pk, reason=reason)
    return len(rows)


class SessionNoLongerValid(Refused):
    """The request's session ended, or its credentials changed, while it was in flight: a
    credential change refused (``auth.session.refused``), recorded by the action."""

    def __init__(self, *, user: User, reason: str, request: HttpRequest | None) -> None:
        super().__init__(
            "This session has ended. Sign in again.",
            actor=user,
            action=AuditAction.AUTH_SESSION_REFUSED,
            target=user,
            reason=reason,
            request=request,
        )


def session_hold(*, request: HttpRequest, user: User) -> User:
    """Lock ``user``'s row and check under that lock that the request's session may still
    change credentials: the user active, the session row live and issued under the
    current credential epoch. Returns the user as locked (read fresh).

    The first lock of the caller's transaction (lock order: the user row first), so a
    credential change in flight can never be applied after an admin's reset committed.
    Raises :class:`SessionNoLongerValid`.
    """
    locked = User.objects.select_for_update(no_key=True).filter(pk=user.pk).first()
    key = request.session.session_key
    live = (
        locked is not None
        and locked.is_active
        and bool(key)
        and UserSession.objects.filter(
            user_id=locked.pk,
            key_hash=session_key_hash(key or ""),
            ended_at__isnull=True,
            credential_epoch=locked.credential_epoch,
        ).exists()
    )
    if locked is None or not live:
        reason = "inactive" if locked is None or not locked.is_active else "session"
        raise SessionNoLongerValid(user=user, reason=reason, request=request)
    return locked


def credentials_bump(
    *, user: User, reason: str, keep_key_hash: str | None = None, revoke_tokens: bool
) -> tuple[int, int]:
    """Move ``user`` to a new credential epoch, inside the caller's transaction.

    Lock order: the user row first (taken here), then sessions, then tokens; the
    caller appends the audit event last. Every session issued before the bump stops
    (its row is ended with ``reason``) except the one whose key hash is
    ``keep_key_hash`` (the session that changed its own password), which is carried
    to the new epoch. With ``revoke_tokens`` every live API token is revoked (an
    admin's reset, a factor reset, a deactivation: the account may be compromised);
    otherwise live tokens are carried forward (the user's own change).

    Only what was issued under the epoch being left is carried forward: a session or
    token born under an older one (its holder authenticated before an earlier reset
    committed) stays dead, and such a token is revoked here.

    Returns (sessions ended, tokens revoked). ``user.credential_epoch`` is updated.
    """
    old_epoch = (
        User.objects.select_for_update(no_key=True)
        .values_list("credential_epoch", flat=True)
        .get(pk=user.pk)
    )
    User.objects.filter(pk=user.pk).update(credential_epoch=F("credential_epoch") + 1)
    user.credential_epoch = old_epoch + 1
    keep = keep_key_hash
    if (
        keep is not None
        and not UserSession.objects.filter(
            user=user, key_hash=keep, ended_at__isnull=True, credential_epoch=old_epoch
        ).exists()
    ):
        keep = None  # the changing session was itself stale: it ends with the others
    ended = user_sessions_end(user=user, reason=reason, except_key_hash=keep)
    if keep is not None:
        UserSession.objects.filter(user=user, key_hash=keep, ended_at__isnull=True).update(
            credential_epoch=user.credential_epoch
        )
    live_tokens = ApiToken.objects.filter(user=user, revoked_at__isnull=True)
    now = timezone.now()
    if revoke_tokens:
        revoked = live_tokens.update(revoked_at=now)
    else:
        revoked = live_tokens.exclude(credential_epoch=old_epoch).update(revoked_at=now)
        live_tokens.filter(credential_epoch=old_epoch).update(
            credential_epoch=user.credential_epoch
        )
    return ended, revoked


@action
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
        ensure_person(actor=actor, user=user, operation="session.end_all", request=request)
    with action_transaction():
        if actor.pk != user.pk:
            actor_and_people_locked(
                actor=actor, users=[user], permission="accounts.manage_sessions",
                target=user, operation="session.end_all", request=request,
            )  # fmt: skip
        ended = user_sessions_end(user=user, reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.SESSION_ENDED_ALL,
            target=user,
            extra={"count": ended, "reason": reason},
            request=request,
        )
    return ended
