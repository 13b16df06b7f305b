"""Reporting an integrity failure: logged every time, audited once per item.

An :class:`~safechat.keyring.errors.IntegrityFailure` means stored key material or
content failed its authenticity check. The edges (socket, API, portal) and the read
selectors call :func:`integrity_failure_report` where they catch one, outside the
failed action's transaction, so the record survives that action's rollback. The audit
event is written once per item (``kind`` and ``ref``), however often it is read, so a
tampered row cannot flood the audit log.
"""

from __future__ import annotations

import logging

from django.db import transaction

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_record
from safechat.keyring.errors import IntegrityFailure

logger = logging.getLogger("safechat.integrity")


def integrity_failure_report(*, failure: IntegrityFailure, actor_id: int | None = None) -> None:
    """Log ``failure`` and audit it as ``key.integrity.failed`` unless already audited.

    Never raises for the reporting itself: a failure to audit is logged, and the
    caller still refuses the item.
    """
    logger.error("integrity check failed: %s %s (reader %s)", failure.kind, failure.ref, actor_id)
    extra = {"kind": failure.kind, "ref": failure.ref}
    try:
        with transaction.atomic():
            already = AuditEvent.objects.filter(
                action=AuditAction.KEY_INTEGRITY_FAILED, extra__kind=failure.kind,
                extra__ref=failure.ref,
            ).exists()  # fmt: skip
            if not already:
                audit_record(
                    actor=None,
                    action=AuditAction.KEY_INTEGRITY_FAILED,
                    target=None,
                    extra={**extra, "reader": actor_id},
                )
    except Exception:
        logger.exception("could not audit an integrity failure: %s %s", failure.kind, failure.ref)
