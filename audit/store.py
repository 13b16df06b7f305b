"""The chain's storage: the head row, and appending one event under its lock.

Below the audit services (``audit.services``), above the pure chain code
(``audit.chain``): it validates nothing a caller supplies and queues nothing;
``audit_record`` does both. Only the audit app uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import connections, models
from django.utils import timezone

from audit import chain, pgappend
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.models import AuditChainHead, AuditEvent


class AuditChainError(RuntimeError):
    """The chain head is missing or inconsistent: refuse to append (fail closed)."""


@dataclass(frozen=True)
class ActorSnapshot:
    type: str
    id: int | None
    username: str


def actor_snapshot(actor: object) -> ActorSnapshot:
    if isinstance(actor, SystemActor):
        return ActorSnapshot(AuditEvent.ACTOR_SYSTEM, None, actor.username)
    if actor is None or isinstance(actor, AnonymousUser):
        return ActorSnapshot(AuditEvent.ACTOR_ANONYMOUS, None, "")
    if isinstance(actor, models.Model) and hasattr(actor, "get_username"):
        if actor.pk is None:
            raise ValueError("audit actor is an unsaved user")
        return ActorSnapshot(AuditEvent.ACTOR_USER, int(actor.pk), str(actor.get_username()))
    raise TypeError(
        f"audit actor must be a user, AnonymousUser, None or SystemActor, "
        f"not {type(actor).__name__}"
    )


def chain_head_locked() -> AuditChainHead:
    """The head row, locked until the end of the transaction.

    On PostgreSQL ``SELECT ... FOR UPDATE`` queues concurrent writers; on SQLite the
    IMMEDIATE transaction already holds the database write lock. A missing head is
    created only while the log is empty: a head lost under existing events is
    tampering, and appending then would fork the chain.
    """
    connection = connections[AuditChainHead.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(pgappend.HEAD_LOCK_SQL)
            row = cursor.fetchone()
            if row is None:
                # No row, so the lock in the WHERE clause was not taken: take it now,
                # in the same order as every other writer, before creating the head.
                cursor.execute(pgappend.LOCK_SQL)
        if row is not None:
            return AuditChainHead(id=1, last_seq=row[0], last_hash=row[1], last_occurred_at=row[2])
    else:
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is not None:
            return head
    if AuditEvent.objects.exists():
        raise AuditChainError("the audit chain head is missing but events exist")
    AuditChainHead.objects.bulk_create([AuditChainHead(pk=1)], ignore_conflicts=True)
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _append_orm(*, event: AuditEvent, head: AuditChainHead | None) -> None:
    """SQLite (and any other backend): lock, hash in Python, insert, advance the head."""
    if head is None:
        head = chain_head_locked()
    # Time never goes backwards along the chain (a clock step back would otherwise
    # make time ranges and seq ranges disagree in exports).
    if head.last_occurred_at is not None:
        event.occurred_at = max(event.occurred_at, head.last_occurred_at)
    event.seq = head.last_seq + 1
    event.prev_hash = head.last_hash
    event.hash = chain.event_hash(event_fields(event))
    event.save()
    AuditChainHead.objects.filter(pk=1).update(
        last_seq=event.seq, last_hash=event.hash, last_occurred_at=event.occurred_at
    )


def _append_postgresql(*, event: AuditEvent, head: AuditChainHead | None) -> None:
    """One call to ``audit_append`` (audit/pgappend.py): lock, hash, insert, advance."""
    connection = connections[AuditEvent.objects.db]
    p1, p2, p3, p4 = chain.canonical_event_parts(event_fields(event))
    with connection.cursor() as cursor:
        cursor.execute(
            pgappend.APPEND_CALL_SQL,
            [
                event.version, event.actor_type, event.actor_id, event.actor_username,
                event.action, event.target_type, event.target_id, event.source_ip,
                event.user_agent, event.request_id, chain.canonical_json(event.extra),
                event.occurred_at, p1, p2, p3, p4, event.channel, event.token_id,
            ],
        )  # fmt: skip
        row = cursor.fetchone()
    if row is None:  # pragma: no cover - the function always returns one row
        raise AuditChainError("audit_append returned nothing")
    event.seq, event.occurred_at, event.prev_hash, event.hash = row
    if head is not None and event.prev_hash != head.last_hash:
        raise AuditChainError("the audit chain head moved while it was locked")
    # The instance now mirrors a stored row, as if loaded.
    event._state.adding = False
    event._state.db = connection.alias


def append_locked(
    *,
    head: AuditChainHead | None = None,
    action: AuditAction,
    actor: ActorSnapshot,
    target_type: str,
    target_id: str,
    source_ip: str | None,
    user_agent: str,
    request_id: str,
    extra: dict[str, Any],
    channel: str = "",
    token_id: int | None = None,
) -> AuditEvent:
    """Append one event at the head of the chain; the caller holds a transaction.

    ``head`` is the head row when the caller already locked it (the checkpoint
    writer); it is updated to the new head. Everything that does not depend on
    the head is prepared before the lock is taken.
    """
    event = AuditEvent(
        seq=0,
        version=chain.CANONICAL_VERSION,
        occurred_at=timezone.now(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_username=actor.username,
        action=action.value,
        target_type=target_type,
        target_id=target_id,
        source_ip=source_ip,
        user_agent=user_agent,
        request_id=request_id,
        channel=channel,
        token_id=token_id,
        extra=extra,
        prev_hash=chain.GENESIS_HASH,
    )
    if connections[AuditEvent.objects.db].vendor == "postgresql":
        _append_postgresql(event=event, head=head)
    else:
        _append_orm(event=event, head=head)
    if head is not None:
        head.last_seq, head.last_hash = event.seq, event.hash
        head.last_occurred_at = event.occurred_at
    return event


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """The hashed fields of ``event`` as a mapping for ``audit.chain``."""
    return {
        "v": event.version,
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "channel": event.channel,
        "token_id": event.token_id,
        "extra": event.extra,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
