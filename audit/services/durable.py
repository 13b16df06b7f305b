"""Events that must survive the caller's rollback: a use of the compliance key, tampering.

``audit_record`` commits or rolls back with the caller's transaction, which is right for
an action and its event. Some events record something that happened regardless of the
action's outcome: a compliance-key use (the key was opened, whatever the caller then did),
or stored key material that failed its integrity check. ``audit_record_surviving_rollback``
records such an event inside the caller's transaction, so it commits with it, and records it
again in its own transaction as soon as the caller's outermost transaction ends, if that
transaction (or a savepoint around the event) rolled back. Either way the event is written
exactly once.

The hook is the connection's switch back to autocommit, which Django makes at the end of
every outermost ``atomic`` block, after commit or rollback. Inside Django's ``TestCase``,
whose transaction never commits, the event simply stays in the test's transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services.record import Actor, Target, audit_record

logger = logging.getLogger(__name__)

_PENDING = "_safechat_audit_pending"
_ARMED = "_safechat_audit_after_rollback_armed"


@dataclass
class _Pending:
    kwargs: dict[str, Any]
    committed: bool = field(default=False)

    def mark_committed(self) -> None:
        self.committed = True


def audit_record_surviving_rollback(
    *,
    actor: Actor,
    action: AuditAction | str,
    target: Target = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Record an event that stays recorded even if the caller's transaction rolls back.

    Outside a transaction it is recorded at once. Inside one it is recorded there, and
    if that work rolls back, recorded again (with ``"after_rollback": true``) in its own
    transaction when the outermost transaction ends. Bad input raises, as for
    ``audit_record``.
    """
    kwargs: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "target": target,
        "extra": dict(extra or {}),
    }
    connection = connections[AuditEvent.objects.db]
    if not connection.in_atomic_block:
        audit_record(**kwargs)
        return
    if any(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        audit_record(**kwargs)  # TestCase: nothing ever commits, nothing to survive
        return
    pending = _Pending(kwargs)
    _pending_list(connection).append(pending)
    _arm(connection)
    # Registered before the record: if recording fails, the event is still written later.
    transaction.on_commit(pending.mark_committed, using=connection.alias)
    audit_record(**kwargs)


def _pending_list(connection: BaseDatabaseWrapper) -> list[_Pending]:
    pending: list[_Pending] | None = connection.__dict__.get(_PENDING)
    if pending is None:
        pending = []
        connection.__dict__[_PENDING] = pending
    return pending


def _arm(connection: BaseDatabaseWrapper) -> None:
    """Wrap this connection's ``set_autocommit`` once: the end of every outermost block."""
    if connection.__dict__.get(_ARMED):
        return
    original = connection.set_autocommit

    def set_autocommit(autocommit: bool, *args: Any, **kwargs: Any) -> None:
        original(autocommit, *args, **kwargs)  # runs the on_commit hooks after a commit
        if autocommit and not connection.in_atomic_block:
            _record_rolled_back(connection)

    connection.__dict__["set_autocommit"] = set_autocommit
    connection.__dict__[_ARMED] = True


def _record_rolled_back(connection: BaseDatabaseWrapper) -> None:
    pending = connection.__dict__.pop(_PENDING, None) or []
    for item in pending:
        if item.committed:
            continue
        kwargs = dict(item.kwargs)
        kwargs["extra"] = {**kwargs["extra"], "after_rollback": True}
        try:
            audit_record(**kwargs)
        except Exception:
            # Runs while Django leaves an atomic block: raising would hide the caller's
            # own outcome. Keep it for the next transaction end on this connection.
            logger.exception("could not record an audit event after a rollback; will retry")
            _pending_list(connection).append(item)
