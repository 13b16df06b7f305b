"""One way to act and to refuse, for every service entry point of every app.

An entry point is marked ``@action``. It runs with no transaction open (the action is
the outermost unit of work: calling one inside another transaction raises
``RuntimeError``), opens its transaction with ``action_transaction()`` (durable), and
refuses by raising ``Refused`` anywhere: before its transaction, inside it, or deep
inside a helper. A refusal raised inside rolls the action back first; then, either way,
the refusal is recorded in its own transaction and the same exception reaches the edge,
which answers it as the ``PermissionDenied`` it is (403, an error frame, an admin
message). So a refusal is recorded exactly once, and never rolls back with the action
it refused.

Some entry points commit work before their transaction on purpose: a key pair a write
will need is created (and audited) before its locks, and rate limits are counted before
any lock (docs/architecture.md, "Locks and transactions"). That is why the decorator
marks and guards the entry point while the context manager opens the transaction.

A lower layer: it imports Django and the audit app's public services, nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.http import HttpRequest

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_record
from audit.services.record import Actor, Target

P = ParamSpec("P")
R = TypeVar("R")

ACTION_MARKER = "safechat_action"
DEFAULT_MESSAGE = "You are not allowed to do that."


class Refused(PermissionDenied):
    """The one refusal: raise it anywhere inside an ``@action``; the action records it.

    ``str(refused)`` is the client-facing ``message``. The audit event is ``action``
    on ``target`` by ``actor``, with ``extra`` plus ``{"reason": reason}`` (when a
    reason is given) and the request's source details. Subclasses (for instance
    ``rooms.errors.BarrierViolationError``) keep a class the edges and tests can tell
    apart; they are recorded the same way.
    """

    def __init__(
        self,
        message: str = DEFAULT_MESSAGE,
        *,
        actor: Actor,
        action: AuditAction,
        target: Target = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
        request: HttpRequest | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.actor = actor
        self.action = action
        self.target = target
        self.reason = reason
        self.extra = dict(extra or {})
        self.request = request
        self.recorded = False

    def audit_extra(self) -> dict[str, Any]:
        """The ``extra`` of the audit event: the reason first, then the details."""
        if self.reason is None:
            return dict(self.extra)
        return {"reason": self.reason, **self.extra}

    def record(self) -> None:
        """Record the refusal in its own transaction, once (later calls do nothing).

        Call it with the action's transaction already ended (rolled back); the
        decorator and ``action_transaction`` do.
        """
        if self.recorded:
            return
        with transaction.atomic():
            audit_record(
                actor=self.actor,
                action=self.action,
                target=self.target,
                extra=self.audit_extra(),
                request=self.request,
            )
        self.recorded = True


def _require_outermost(name: str) -> None:
    """Raise RuntimeError if a transaction is open: an action is the outermost unit.

    The same rule as ``transaction.atomic(durable=True)``, checked on entry, so an
    entry point that refuses before its transaction is caught as well. A Django test
    case's own transaction is exempt, as it is for ``durable``.
    """
    connection = connections[AuditEvent.objects.db]
    blocks = connection.atomic_blocks
    from_testcase = bool(blocks) and getattr(blocks[-1], "_from_testcase", False)
    if connection.in_atomic_block and not from_testcase:
        raise RuntimeError(
            f"{name} is an action and opens the outermost transaction; it cannot run inside "
            "another one (call its inner, undecorated function instead)"
        )


def action(func: Callable[P, R]) -> Callable[P, R]:
    """Mark ``func`` as a service entry point.

    Guarantees: it runs with no transaction open (else ``RuntimeError``); a
    ``Refused`` it raises, from anywhere, is recorded once after any rollback and then
    re-raised unchanged. Everything else it raises passes through untouched.
    """

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        _require_outermost(func.__qualname__)
        try:
            return func(*args, **kwargs)
        except Refused as refused:
            refused.record()  # outside any transaction now: it commits on its own
            raise

    setattr(run, ACTION_MARKER, True)
    return run


def is_action(func: object) -> bool:
    """Whether ``func`` is an ``@action`` entry point."""
    return bool(getattr(func, ACTION_MARKER, False))


@contextmanager
def action_transaction() -> Iterator[None]:
    """The action's transaction: ``transaction.atomic(durable=True)``.

    Whatever it raises rolls every write of the action back. A ``Refused`` is then
    recorded in its own transaction (after the rollback, so it survives) and re-raised.
    Raises ``RuntimeError`` if a transaction is already open.
    """
    try:
        with transaction.atomic(durable=True):
            yield
    except Refused as refused:
        refused.record()
        raise


__all__ = ["Refused", "action", "action_transaction", "is_action"]
