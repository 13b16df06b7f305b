"""``audit_record``: append one event to the hash chain (see ``audit.services``)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connections, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit import chain, pgappend
from audit.actions import AuditAction, audit_action_parse
from audit.actors import TARGET_ID_MAX_LENGTH, AuditTarget, SystemActor
from audit.extra import extra_clean
from audit.models import AuditChainHead, AuditEvent
from safechat.middleware import current_request_id

logger = logging.getLogger(__name__)

USER_AGENT_MAX_LENGTH = 256
REQUEST_ID_MAX_LENGTH = 64
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

Actor = SystemActor | AnonymousUser | models.Model | None
Target = AuditTarget | models.Model | None


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


def _target_fields(target: object) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, AuditTarget):
        return target.type, target.id
    if isinstance(target, models.Model):
        if target.pk is None:
            raise ValueError("audit target is an unsaved model instance")
        target_id = str(target.pk)
        if len(target_id) > TARGET_ID_MAX_LENGTH:
            raise ValueError("audit target id is too long")
        return target._meta.label_lower, target_id
    raise TypeError(
        f"audit target must be a model instance, AuditTarget or None, not {type(target).__name__}"
    )


def _request_fields(request: HttpRequest | None) -> tuple[str | None, str, str]:
    """Source IP, user agent and request id; the id falls back to the context."""
    source_ip: str | None = None
    user_agent = ""
    request_id = ""
    if request is not None:
        remote = request.META.get("REMOTE_ADDR") or ""
        try:
            source_ip = str(ipaddress.ip_address(remote))
        except ValueError:
            source_ip = None
        raw_agent = str(request.META.get("HTTP_USER_AGENT", ""))
        user_agent = _CONTROL_CHARACTERS.sub("", raw_agent)[:USER_AGENT_MAX_LENGTH]
        request_id = str(getattr(request, "request_id", "") or "")
    if not request_id:
        request_id = current_request_id.get()
        if request_id == "-":  # the contextvar's "no request" default
            request_id = ""
    request_id = _CONTROL_CHARACTERS.sub("", request_id)[:REQUEST_ID_MAX_LENGTH]
    return source_ip, user_agent, request_id


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
                event.occurred_at, p1, p2, p3, p4,
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
    schedule_checkpoint: bool = True,
    action: AuditAction,
    actor: ActorSnapshot,
    target_type: str,
    target_id: str,
    source_ip: str | None,
    user_agent: str,
    request_id: str,
    extra: dict[str, Any],
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
    if schedule_checkpoint:
        _checkpoint_schedule_if_due(event.seq)
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
        "extra": event.extra,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def audit_record(
    *,
    actor: Actor,
    action: AuditAction | str,
    target: Target = None,
    extra: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Append one event to the hash chain and return it.

    Guarantees: the event commits or rolls back with the caller's transaction
    (wrap the action and this call in one ``transaction.atomic()``; called alone it
    is atomic by itself); seq numbers are gap-free and the chain never forks under
    concurrent writers; an unknown action, a bad actor or target, or an ``extra``
    that is too large, not canonical JSON or names a secret raises before anything
    is written. ``actor`` is a user, ``AnonymousUser``/None or a ``SystemActor``;
    ``target`` a saved model instance or an ``AuditTarget``. ``request`` supplies
    the source IP, user agent and request id.
    """
    parsed_action = audit_action_parse(action)
    snapshot = actor_snapshot(actor)
    target_type, target_id = _target_fields(target)
    cleaned_extra = extra_clean(extra, max_bytes=settings.SAFECHAT_AUDIT_EXTRA_MAX_BYTES)
    source_ip, user_agent, request_id = _request_fields(request)
    append = functools.partial(
        append_locked,
        action=parsed_action,
        actor=snapshot,
        target_type=target_type,
        target_id=target_id,
        source_ip=source_ip,
        user_agent=user_agent,
        request_id=request_id,
        extra=cleaned_extra,
    )
    connection = connections[AuditEvent.objects.db]
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    ):
        # Called standalone: the one audit_append statement is its own transaction,
        # committed by the server without another round trip under the chain lock.
        return append()
    # Inside the caller's transaction no savepoint: a failed append fails the action anyway.
    with transaction.atomic(using=connection.alias, savepoint=False):
        return append()


def _checkpoint_schedule_if_due(seq: int) -> None:
    every = int(settings.SAFECHAT_AUDIT_CHECKPOINT_EVERY)
    if every > 0 and seq % every == 0:
        transaction.on_commit(_checkpoint_enqueue)


def _checkpoint_enqueue() -> None:
    # A lost task only delays the checkpoint to the next beat run.
    from audit.tasks import audit_checkpoint_write_task

    try:
        audit_checkpoint_write_task.delay()
    except Exception:
        logger.exception("could not queue an audit checkpoint; the beat job will write it")
