"""API tokens: created by a verified user, shown once, stored hashed, scoped, expiring."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from accounts.credentials import api_token_prefix, hashes_match, new_api_token
from accounts.models import ApiToken, User
from accounts.roles import MANAGE_USERS
from accounts.scopes import scope_covers
from accounts.services._common import actor_and_people_locked, client_ip, ensure_permission
from accounts.session_policy import (
    token_ancestor_revoked,
    token_refusal_reason,
    token_usable_until,
)
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.ratelimit import Rate, rate_exceeded, rate_hit
from safechat.unicode_text import validate_label

# Recording every use would turn each API read into a write.
LAST_USED_INTERVAL = timedelta(minutes=1)
# The longest name a token takes (its column's length), in characters.
NAME_MAX = 100


class TokenRefused(Exception):
    """Unknown, malformed, revoked or expired token, or an inactive owner: one answer for all."""


class TokenAttemptsThrottled(Exception):
    """Too many refused tokens from this client: a further invalid one is not audited."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many invalid tokens; try again later.")
        self.retry_after = retry_after


@action
def api_token_create(
    *,
    actor: User,
    name: str,
    scope: str,
    days: int | None = None,
    via_token: ApiToken | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``actor``; returns it with the secret, which is never stored.

    Guarantees: every token lives between 1 and ``SAFECHAT_TOKEN_MAX_DAYS`` days
    (whichever edge asks: portal, API, admin, command). A token minted by a token
    (``via_token``) never exceeds its parent: not in scope, so a read token never
    becomes a write token, and not in life, so a token about to expire cannot renew
    itself into a long-lived one.

    Raises ``ValidationError`` for a lifetime outside the limit, and keyed by ``name``
    for a name that is empty, longer than ``NAME_MAX`` or breaks the rules of every
    label (``safechat.unicode_text.validate_label``: no direction or control character,
    something visible);
    ``Refused`` (audited ``token.create.refused``, nothing created) for a child wider
    or asked to live longer than its parent (without ``days``, a child gets the
    default life cut to its parent's); ``Refused`` (audited ``token.create.refused``,
    ``permission``) for a ``scim`` token asked by someone without
    ``accounts.manage_users`` (checked again under the actor's row): provisioning
    creates and deactivates accounts, so its credential is a security admin's to issue.
    """
    scope = ApiToken.Scope(scope).value
    provisioning = scope == ApiToken.Scope.SCIM
    if provisioning:
        ensure_permission(
            actor=actor, permission=MANAGE_USERS, action=AuditAction.TOKEN_CREATE_REFUSED,
            operation="token.create.scim", request=request,
        )  # fmt: skip
    max_days = int(settings.SAFECHAT_TOKEN_MAX_DAYS)
    asked = days
    days = min(settings.SAFECHAT_API_TOKEN_DAYS, max_days) if days is None else days
    if not 1 <= days <= max_days:
        raise ValidationError(f"A token lives between 1 and {max_days} days.")
    expires_at = timezone.now() + timedelta(days=days)
    if via_token is not None:
        if asked is None:
            # The default life is cut to the parent's; a life asked for is refused instead.
            expires_at = min(expires_at, token_usable_until(via_token))
        _ensure_within_parent(
            actor=actor, parent=via_token, scope=scope, expires_at=expires_at, request=request
        )
    name = name.strip()
    # The rules of every label (a token's name is read in the token list and the audit
    # log), keyed by field so every edge can show the refusal beside it.
    try:
        if not name:
            raise ValidationError("A name is required.", code="required")
        if len(name) > NAME_MAX:
            raise ValidationError(f"At most {NAME_MAX} characters.", code="max_length")
        validate_label(name)
    except ValidationError as refused:
        raise ValidationError({"name": refused.error_list}) from None
    secret, prefix, token_hash = new_api_token()
    with action_transaction():
        if provisioning:
            actor_and_people_locked(
                actor=actor, users=[], permission=MANAGE_USERS,
                action=AuditAction.TOKEN_CREATE_REFUSED, operation="token.create.scim",
                request=request,
            )  # fmt: skip
        if via_token is not None:
            # It authenticated, but may have been revoked (or run out) since: checked
            # again under its lock, which a revocation of it or an ancestor also takes.
            _ensure_parent_live(actor=actor, parent=via_token, request=request)
        token = ApiToken.objects.create(
            user=actor,
            parent=via_token,
            # As read when the actor authenticated: a credential reset committed since
            # then leaves this token born revoked (``api_token_authenticate``).
            credential_epoch=actor.credential_epoch,
            name=name,
            prefix=prefix,
            token_hash=token_hash,
            scope=scope,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action=AuditAction.TOKEN_CREATED,
            target=token,
            extra={"prefix": prefix, "scope": scope, "days": days, "name": name},
            request=request,
        )
    return token, secret


def _ensure_parent_live(*, actor: User, parent: ApiToken, request: HttpRequest | None) -> None:
    """Inside the minting transaction: lock ``parent`` and refuse (``Refused``, audited
    ``token.create.refused``) unless it and every ancestor are unrevoked and unexpired."""
    locked = ApiToken.objects.select_for_update().get(pk=parent.pk)
    reason = None
    if locked.revoked_at is not None or token_ancestor_revoked(token=locked):
        reason = "parent_revoked"
    elif locked.expires_at <= timezone.now():
        reason = "parent_expired"
    if reason is not None:
        raise Refused(
            "The token that asked is no longer valid.",
            actor=actor,
            action=AuditAction.TOKEN_CREATE_REFUSED,
            target=locked,
            reason=reason,
            extra={"prefix": locked.prefix},
            request=request,
        )


def _live_descendants(token_id: int) -> list[int]:
    """The ids of the unrevoked tokens minted, directly or down the line, by ``token_id``."""
    found: list[int] = []
    level = [token_id]
    seen = {token_id}
    while level:
        children = [
            pk
            for pk in ApiToken.objects.filter(parent_id__in=level).values_list("pk", flat=True)
            if pk not in seen
        ]
        seen.update(children)
        found.extend(children)
        level = children
    live = ApiToken.objects.filter(pk__in=found, revoked_at__isnull=True)
    return sorted(live.values_list("pk", flat=True))


def _descendants_locked(token_id: int) -> list[ApiToken]:
    """Lock ``token_id``'s live descendants (its own row is locked already).

    A mint locks its parent, so once a token is locked no child of it can appear;
    looking again after each round of locks finds a child minted just before it.
    """
    rows: dict[int, ApiToken] = {}
    while found := [pk for pk in _live_descendants(token_id) if pk not in rows]:
        for row in ApiToken.objects.select_for_update().filter(pk__in=found).order_by("pk"):
            rows[row.pk] = row
    return [rows[pk] for pk in sorted(rows) if rows[pk].revoked_at is None]


def _ensure_within_parent(
    *,
    actor: User,
    parent: ApiToken,
    scope: str,
    expires_at: datetime,
    request: HttpRequest | None,
) -> None:
    """Refuse a child token wider or longer-lived than the token that asks for it."""
    reason = None
    parent_end = token_usable_until(parent)
    if not scope_covers(parent.scope, scope):
        reason, message = "scope", "A token cannot create a token with a wider scope than its own."
    elif expires_at > parent_end:
        reason = "lifetime"
        message = (
            "A token cannot create a token that outlives it "
            f"(this one may be used until {parent_end:%Y-%m-%d %H:%M} UTC)."
        )
    if reason is not None:
        raise Refused(
            message,
            actor=actor,
            action=AuditAction.TOKEN_CREATE_REFUSED,
            target=parent,
            reason=reason,
            extra={
                "prefix": parent.prefix,
                "scope": scope,
                "parent_scope": parent.scope,
                "expires_at": expires_at.isoformat(),
                "parent_expires_at": parent_end.isoformat(),
            },
            request=request,
        )


@action
def api_token_revoke(*, actor: User, token: ApiToken, request: HttpRequest | None = None) -> None:
    """Revoke a token and, in the same transaction, every live token it minted down the
    line: its own user, or a holder of ``accounts.manage_tokens``.

    Each token revoked is audited ``token.revoked`` on its own row (so each token's
    history is complete): the one asked for with ``descendants`` (the ids revoked with
    it), each descendant with ``revoked_with`` (the id asked for). Revoking a token
    already revoked still revokes descendants left live. Locks: the token, then its
    descendants in id order (a mint from any of them waits, then is refused); the audit
    chain last.
    """
    if token.user_id != actor.pk:
        ensure_permission(
            actor=actor, permission="accounts.manage_tokens", target=token,
            operation="token.revoke", request=request,
        )  # fmt: skip
    with action_transaction():
        if token.user_id != actor.pk:  # the right read again under both people's locks
            actor_and_people_locked(
                actor=actor, users=[token.user], permission="accounts.manage_tokens",
                target=token, operation="token.revoke", request=request,
            )  # fmt: skip
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        descendants = _descendants_locked(locked.pk)
        now = timezone.now()
        revoked = [row for row in [locked, *descendants] if row.revoked_at is None]
        if not revoked:
            return
        ApiToken.objects.filter(pk__in=[row.pk for row in revoked]).update(revoked_at=now)
        for row in revoked:
            row.revoked_at = now
            audit_record(
                actor=actor,
                action=AuditAction.TOKEN_REVOKED,
                target=row,
                extra=(
                    {"prefix": row.prefix, "descendants": [d.pk for d in descendants]}
                    if row.pk == locked.pk
                    else {"prefix": row.prefix, "revoked_with": locked.pk}
                ),
                request=request,
            )
    token.revoked_at = locked.revoked_at


@action
def api_token_authenticate(
    *, presented: str | None, request: HttpRequest | None = None
) -> ApiToken:
    """The live token behind ``presented``; refusals are audited and look alike.

    ``presented`` is None for an ``Authorization`` header that is not one well-formed
    ``Bearer`` credential (another scheme, no value, several, not ASCII): refused as
    ``malformed``, audited and counted like a wrong token, so malformed headers are no
    free way to probe. A token older than ``SAFECHAT_TOKEN_MAX_DAYS`` as it stands now
    is refused (``past_max_life``) whatever its own expiry: lowering the maximum life
    shortens the tokens already issued.

    Refused tokens are counted per client IP. A valid token is always accepted, so
    one misconfigured script behind a shared address never locks out the others;
    past ``SAFECHAT_TOKEN_FAILURE_LIMIT`` refusals in any window, further invalid
    tokens from that IP are answered "throttled" without an audit event each (the
    throttling is audited once), so a token spray cannot flood the audit log.
    """
    failures = Rate.of(settings.SAFECHAT_TOKEN_FAILURE_LIMIT)
    ip = client_ip(request) or "unknown"
    prefix = api_token_prefix(presented) if presented is not None else None
    token = (
        ApiToken.objects.select_related("user").filter(prefix=prefix).first() if prefix else None
    )
    now = timezone.now()
    reason: str | None
    if presented is None:
        reason = "malformed"
    elif token is None or not hashes_match(token.token_hash, presented):
        reason = "unknown"
    else:
        reason = token_refusal_reason(token, now=now)
    if reason is not None or token is None:  # (reason is set whenever token is None)
        # Named, so the refusal reports what remains of the IP's budget (RateLimit headers).
        retry_after = rate_exceeded(failures, "token-failures", ip, policy="token-failures")
        if retry_after is not None:
            raise TokenAttemptsThrottled(retry_after=retry_after)
        known = token if reason not in {"unknown", "malformed"} else None
        rate_hit(failures, "token-failures", ip, policy="token-failures")
        with action_transaction():
            audit_record(
                actor=known.user if known else None,
                action=AuditAction.TOKEN_USED_REFUSED,
                target=known,
                extra={"prefix": (prefix or "")[:16], "reason": reason},
                request=request,
            )
            if rate_exceeded(failures, "token-failures", ip) is not None:
                audit_record(
                    actor=None,
                    action=AuditAction.TOKEN_USED_REFUSED,
                    target=None,
                    extra={
                        "reason": "throttled",
                        "refused": failures.limit,
                        "window_seconds": failures.seconds,
                    },
                    request=request,
                )
        raise TokenRefused("Invalid token.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
