"""Writes to the audit log. Every other app records its events through ``audit_record``.

Usage, inside the transaction of the action being recorded (last, see below)::

    from audit.actions import AuditAction
    from audit.services import AuditTarget, SystemActor, audit_record

    @transaction.atomic
    def room_archive(*, actor: User, room: Room) -> None:
        ...change the room...
        audit_record(actor=actor, action=AuditAction.ROOM_ARCHIVED, target=room)

If the action rolls back, its event rolls back with it; if the event cannot be
written (bad input, database error), ``audit_record`` raises and the action's
transaction rolls back too: nothing happens unaudited.

Every writer locks the chain head row until its transaction ends, so call
``audit_record`` at the end of the transaction, after the slow work, to keep the
lock short; take other row locks before it, never after.
"""

from audit.actions import AuditAction
from audit.actors import SYSTEM_AUDIT, SYSTEM_CLI, SYSTEM_RETENTION, AuditTarget, SystemActor
from audit.extra import ForbiddenExtraKeyError
from audit.services.access import access_refusal_record
from audit.services.checkpoints import audit_checkpoint_write
from audit.services.durable import audit_record_surviving_rollback
from audit.services.export import AuditExport, audit_export_start
from audit.services.record import audit_record
from audit.services.verification import AuditVerification, audit_chain_verify
from audit.store import AuditChainError

__all__ = [
    "SYSTEM_AUDIT",
    "SYSTEM_CLI",
    "SYSTEM_RETENTION",
    "AuditAction",
    "AuditChainError",
    "AuditExport",
    "AuditTarget",
    "AuditVerification",
    "ForbiddenExtraKeyError",
    "SystemActor",
    "access_refusal_record",
    "audit_chain_verify",
    "audit_checkpoint_write",
    "audit_export_start",
    "audit_record",
    "audit_record_surviving_rollback",
]
