"""``audit_record``: append one event to the hash chain (see ``audit.services``)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connections, models, transaction
from django.http import HttpRequest

from audit.actions import AuditAction, audit_action_parse
from audit.actors import TARGET_ID_MAX_LENGTH, AuditTarget, SystemActor
from audit.extra import extra_clean
from audit.models import AuditEvent
from audit.store import actor_snapshot, append_locked
from safechat import metrics
from safechat.request_context import (
    CHANNEL_COMMAND,
    current_acting,
    current_request_id,
    http_channel,
    new_request_id,
)

logger = logging.getLogger(__name__)

# The name ``audit.tasks.audit_checkpoint_write_task`` is registered under.
AUDIT_CHECKPOINT_TASK = "audit.tasks.audit_checkpoint_write_task"

USER_AGENT_MAX_LENGTH = 256
REQUEST_ID_MAX_LENGTH = 64
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

Actor = SystemActor | AnonymousUser | models.Model | None
Target = AuditTarget | models.Model | None


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
    """Source IP, user agent and request id: from ``request`` when given, else from the
    acting context (``safechat.request_context``) the edge serving this code set."""
    source_ip: str | None = None
    user_agent = ""
    request_id = ""
    context = current_acting.get()
    if request is not None:
        remote = request.META.get("REMOTE_ADDR") or ""
        try:
            source_ip = str(ipaddress.ip_address(remote))
        except ValueError:
            source_ip = None
        raw_agent = str(request.META.get("HTTP_USER_AGENT", ""))
        user_agent = _CONTROL_CHARACTERS.sub("", raw_agent)[:USER_AGENT_MAX_LENGTH]
        request_id = str(getattr(request, "request_id", "") or "")
    elif context is not None:
        source_ip = context.ip
        user_agent = _CONTROL_CHARACTERS.sub("", context.user_agent)[:USER_AGENT_MAX_LENGTH]
    if not request_id:
        request_id = current_request_id.get()
        if request_id == "-":  # the contextvar's "no request" default
            request_id = context.request_id if context is not None else ""
    if not request_id and request is not None:
        # A request that never passed the middleware: it still gets one id for all its events.
        request_id = new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
    request_id = _CONTROL_CHARACTERS.sub("", request_id)[:REQUEST_ID_MAX_LENGTH]
    return source_ip, user_agent, request_id


def acting_source() -> tuple[str | None, str, str]:
    """Source IP, user agent and request id of the code being served, from its acting
    context (for writers that append without ``audit_record``)."""
    return _request_fields(None)


def acting_channel_token(request: HttpRequest | None = None) -> tuple[str, int | None]:
    """The channel and API token id of the code being served, from the acting context the
    edge set. Without one: an HTTP request's channel by its path, and otherwise
    ``command``, since code run outside every request, frame and task is an operator's
    process (a management command, the shell, a script). An edge whose work goes on after
    it returned (a streamed download body) carries its context along
    (``safechat.request_context.acting_kept``), so that work is never taken for a command."""
    context = current_acting.get()
    if context is not None:
        return context.channel, context.token_id
    if request is not None:
        return http_channel(request.path_info), None
    return CHANNEL_COMMAND, None


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
    the source IP, user agent and request id; without it they come from the acting
    context (``safechat.request_context``), as do the channel and the API token id always.
    """
    parsed_action = audit_action_parse(action)
    snapshot = actor_snapshot(actor)
    target_type, target_id = _target_fields(target)
    cleaned_extra = extra_clean(extra, max_bytes=settings.SAFECHAT_AUDIT_EXTRA_MAX_BYTES)
    source_ip, user_agent, request_id = _request_fields(request)
    channel, token_id = acting_channel_token(request)
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
        channel=channel,
        token_id=token_id,
    )
    connection = connections[AuditEvent.objects.db]
    if (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    ):
        # Called standalone: the one audit_append statement is its own transaction,
        # committed by the server without another round trip under the chain lock.
        event = append()
        _checkpoint_schedule_if_due(event.seq)
        _refusal_count(parsed_action)
        _metrics_count(parsed_action, using=connection.alias)
        return event
    # Inside the caller's transaction no savepoint: a failed append fails the action anyway.
    with transaction.atomic(using=connection.alias, savepoint=False):
        event = append()
        _checkpoint_schedule_if_due(event.seq)
        _refusal_count(parsed_action)
        _metrics_count(parsed_action, using=connection.alias)
        return event


def _metrics_count(action: AuditAction, *, using: str) -> None:
    """Count the event in the metrics once it has committed (safechat.metrics)."""
    transaction.on_commit(functools.partial(metrics.action_committed, action.value), using=using)


def _refusal_count(action: AuditAction) -> None:
    """Count a refusal in the acting context, so the edge knows the 403 it answers is on
    the record already (``safechat.middleware``)."""
    context = current_acting.get()
    if context is not None and action.value.endswith((".refused", ".denied")):
        context.refusals_recorded += 1


def _checkpoint_schedule_if_due(seq: int) -> None:
    every = int(settings.SAFECHAT_AUDIT_CHECKPOINT_EVERY)
    if every > 0 and seq % every == 0:
        transaction.on_commit(_checkpoint_enqueue)


def _checkpoint_enqueue() -> None:
    # Queued by name: the task (audit.tasks) calls the checkpoint service, which records
    # through this module, so importing it here would close a circle.
    # A lost task only delays the checkpoint to the next beat run.
    try:
        current_app.send_task(AUDIT_CHECKPOINT_TASK)
    except Exception:
        logger.exception("could not queue an audit checkpoint; the beat job will write it")
