"""Asking for a retention run now, rather than waiting for the beat schedule."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from compliance.services._common import MANAGE_RETENTION, require_permission
from safechat.actions import action, action_transaction

logger = logging.getLogger(__name__)

APPLY_RETENTION_TASK = "compliance.apply_retention"


@action
def retention_run_request(*, actor: User) -> None:
    """Queue a retention run for the worker, on behalf of ``actor`` (a compliance officer).

    The request is on the record as theirs (``retention.run.requested``, with the channel
    it came through); the run itself acts as them too (``retention_apply`` checks their
    right again when it starts, so a right withdrawn meanwhile runs nothing), and a run
    already working makes it stand down. Queued after commit: a request rolled back
    queues nothing. Refused (``retention.run.refused``, nothing queued) without
    ``compliance.manage_retention``.
    """
    require_permission(
        actor=actor, permission=MANAGE_RETENTION, action=AuditAction.RETENTION_RUN_REFUSED
    )
    with action_transaction():
        audit_record(actor=actor, action=AuditAction.RETENTION_RUN_REQUESTED, target=None)
        requester = actor.pk
        transaction.on_commit(lambda: _queue(requester))


def _queue(requester: int) -> None:
    try:
        current_app.send_task(APPLY_RETENTION_TASK, kwargs={"requested_by": requester})
    except Exception:
        logger.exception("could not queue a retention run; the beat schedule runs it later")
