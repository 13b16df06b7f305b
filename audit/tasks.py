"""Celery tasks of the audit log: they carry no arguments and call a service.

Both are safe to run twice: a second checkpoint run finds the head covered, a
second verification just records another result.
"""

from __future__ import annotations

from celery import shared_task

from audit.services import audit_chain_verify, audit_checkpoint_write


@shared_task(name="audit.tasks.audit_checkpoint_write_task")
def audit_checkpoint_write_task() -> int | None:
    """Sign the chain head if it moved since the last checkpoint; the checkpoint's seq."""
    checkpoint = audit_checkpoint_write()
    return checkpoint.seq if checkpoint is not None else None


@shared_task(name="audit.tasks.audit_chain_verify_task")
def audit_chain_verify_task() -> bool:
    """Verify the whole log and record ``audit.verified`` or ``audit.verification.failed``."""
    return audit_chain_verify(record=True).intact
