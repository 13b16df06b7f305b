"""eDiscovery export requests under four eyes: one compliance officer asks, another
decides. Every step and every refused attempt is an audit event."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from datetime import date

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from compliance.models import ExportRequest
from compliance.selectors.exports import export_scope_digest, scope_digest
from compliance.services._common import (
    REASON_MAX,
    refused,
    require_ordered_range,
    require_permission,
    require_scope,
    require_text,
    scoped_create,
)
from rooms.models import Room
from safechat.actions import action, action_transaction
from safechat.crypto import CryptoError, HpkePublicKey, KeyPurpose

logger = logging.getLogger(__name__)

# The name ``compliance.tasks.export_run_task`` is registered under.
EXPORT_RUN_TASK = "compliance.export_run"
REQUEST_EXPORT = "compliance.request_export"
APPROVE_EXPORT = "compliance.approve_export"
RECIPIENT_KEY_MAX = 4000
DOWNLOADS_MAX = 20


def _recipient_key(value: str, *, actor: User) -> str:
    key = value.strip() if isinstance(value, str) else ""
    if not key:
        return ""
    try:
        if len(key) > RECIPIENT_KEY_MAX:
            raise ValueError("too long")
        HpkePublicKey.from_bytes(base64.b64decode(key, validate=True), purpose=KeyPurpose.USER_HPKE)
    except (binascii.Error, ValueError, CryptoError):
        raise refused(
            actor=actor,
            action=AuditAction.EXPORT_ACTION_REFUSED,
            reason="bad recipient key",
            message="the recipient public key is not a base64 SafeChat HPKE public key",
        ) from None
    return key


@action
def export_request(
    *,
    actor: User,
    matter: str,
    reason: str,
    starts_on: date | None,
    ends_on: date | None,
    rooms: Sequence[Room] = (),
    custodians: Sequence[User] = (),
    recipient_public_key: str = "",
    max_downloads: int | None = None,
) -> ExportRequest:
    """Ask for an export of ``rooms`` and/or ``custodians`` (what they sent anywhere, and
    their direct conversations) written from ``starts_on`` to ``ends_on`` (inclusive UTC
    days), for ``matter``; it waits for a second officer (``export_approve``).

    Refused (audited ``export.action.refused``, nothing stored) without
    ``compliance.request_export``, with an empty matter or reason, neither rooms nor
    custodians, a missing range, a range that ends before it starts or ends after today
    (UTC: what the approver reviews is what exists), a recipient key that is not base64,
    or a download limit outside 1 to ``DOWNLOADS_MAX``. Locks: none but the audit chain
    (a new row nobody else holds).
    """
    refusal = AuditAction.EXPORT_ACTION_REFUSED
    require_permission(actor=actor, permission=REQUEST_EXPORT, action=refusal)
    matter, reason, room_ids, custodian_ids = require_scope(
        actor=actor,
        action=refusal,
        matter=matter,
        reason=reason,
        rooms=rooms,
        custodians=custodians,
        nothing_reason="nothing to export",
        nothing_message="an export names at least one room or custodian",
    )
    if starts_on is None or ends_on is None:
        raise refused(
            actor=actor,
            action=refusal,
            reason="no range",
            message="an export names the first and the last day it covers",
            matter=matter,
        )
    require_ordered_range(
        actor=actor,
        action=refusal,
        matter=matter,
        starts_on=starts_on,
        ends_on=ends_on,
        noun="export",
    )
    today = timezone.now().date()
    if ends_on > today:
        raise refused(
            actor=actor,
            action=refusal,
            reason="range in the future",
            message="the export's range ends after today (UTC)",
            matter=matter,
            ends_on=ends_on.isoformat(),
        )
    limit = settings.SAFECHAT_EXPORT_MAX_DOWNLOADS if max_downloads is None else max_downloads
    if not 1 <= limit <= DOWNLOADS_MAX:
        raise refused(
            actor=actor,
            action=refusal,
            reason="download limit",
            message=f"the download limit is from 1 to {DOWNLOADS_MAX}",
            matter=matter,
        )
    recipient = _recipient_key(recipient_public_key, actor=actor)
    digest = scope_digest(
        matter=matter,
        room_ids=room_ids,
        custodian_ids=custodian_ids,
        starts_on=starts_on,
        ends_on=ends_on,
        recipient_public_key=recipient,
        max_downloads=limit,
    )
    with action_transaction():
        export = scoped_create(
            ExportRequest,
            actor=actor,
            action=AuditAction.EXPORT_REQUESTED,
            room_ids=room_ids,
            custodian_ids=custodian_ids,
            extra={
                "starts_on": starts_on.isoformat(),
                "ends_on": ends_on.isoformat(),
                "recipient_given": bool(recipient),
                "max_downloads": limit,
                "scope_digest": digest,
            },
            matter=matter,
            reason=reason,
            starts_on=starts_on,
            ends_on=ends_on,
            recipient_public_key=recipient,
            max_downloads=limit,
            scope_digest=digest,
            requested_by=actor,
            requested_at=timezone.now(),
        )
    return export


def _decidable(*, actor: User, export: ExportRequest, decision: str) -> ExportRequest:
    """``export``'s row, locked, once it is certain ``actor`` may decide it now."""
    refusal = AuditAction.EXPORT_ACTION_REFUSED
    locked = ExportRequest.objects.select_for_update(no_key=True).get(pk=export.pk)
    if locked.requested_by_id == actor.pk:
        raise refused(
            actor=actor,
            action=refusal,
            target=locked,
            reason="own request",
            message=f"a second compliance officer must {decision} this export, not its requester",
            decision=decision,
        )
    if locked.state != ExportRequest.State.REQUESTED:
        raise refused(
            actor=actor,
            action=refusal,
            target=locked,
            reason="already decided",
            message=f"this export was already decided ({locked.state})",
            decision=decision,
            state=locked.state,
        )
    return locked


@action
def export_approve(*, actor: User, export: ExportRequest, scope_digest: str) -> ExportRequest:
    """Approve another officer's export request, naming the exact scope reviewed by its
    digest (``compliance.selectors.exports.export_scope_digest``, shown on its page).

    Refused (audited ``export.action.refused``, nothing changed) without
    ``compliance.approve_export``, for one's own request, for a request already decided
    (also when two officers decide it at the same instant: decided under the request's
    row lock, so exactly one wins), and when ``scope_digest`` is not the digest of the
    request's scope as stored. Locks: the export request's row; the audit chain last.
    """
    refusal = AuditAction.EXPORT_ACTION_REFUSED
    require_permission(actor=actor, permission=APPROVE_EXPORT, action=refusal)
    with action_transaction():
        locked = _decidable(actor=actor, export=export, decision="approve")
        stored = export_scope_digest(locked)
        submitted = scope_digest.strip().lower() if isinstance(scope_digest, str) else ""
        if submitted != stored or stored != locked.scope_digest:
            raise refused(
                actor=actor,
                action=refusal,
                target=locked,
                reason="scope differs",
                message="the scope you approved is not this request's scope: review it again",
                decision="approve",
            )
        locked.state = ExportRequest.State.APPROVED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.save(update_fields=["state", "decided_by", "decided_at"])
        audit_record(
            actor=actor,
            action=AuditAction.EXPORT_APPROVED,
            target=locked,
            extra={"matter": locked.matter, "scope_digest": stored},
        )
        export_id = locked.pk
        transaction.on_commit(lambda: _queue(export_id))
    return locked


def _queue(export_id: int) -> None:
    try:
        current_app.send_task(EXPORT_RUN_TASK, kwargs={"export_id": export_id})
    except Exception:
        # The request stays approved; queueing the task again starts it (it is idempotent).
        logger.exception("could not queue eDiscovery export %s", export_id)


@action
def export_refuse(*, actor: User, export: ExportRequest, reason: str) -> ExportRequest:
    """Refuse another officer's export request, with a reason; nothing is exported.

    Refused (audited ``export.action.refused``, nothing changed) without
    ``compliance.approve_export``, without a reason, for one's own request and for a
    request already decided (under the request's row lock). Locks: the export request's
    row; the audit chain last.
    """
    refusal = AuditAction.EXPORT_ACTION_REFUSED
    require_permission(actor=actor, permission=APPROVE_EXPORT, action=refusal)
    reason = require_text(reason, actor=actor, action=refusal, field="reason", limit=REASON_MAX)
    with action_transaction():
        locked = _decidable(actor=actor, export=export, decision="refuse")
        locked.state = ExportRequest.State.REFUSED
        locked.decided_by = actor
        locked.decided_at = timezone.now()
        locked.decision_note = reason
        locked.save(update_fields=["state", "decided_by", "decided_at", "decision_note"])
        audit_record(
            actor=actor,
            action=AuditAction.EXPORT_REFUSED,
            target=locked,
            extra={"matter": locked.matter},
        )
    return locked
