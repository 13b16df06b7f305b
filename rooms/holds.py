"""Whether a legal hold covers a room or an epoch, answered by the compliance app.

Legal holds are the compliance app's (``compliance.models.LegalHold``), which sits above
``rooms`` in the layers (docs/architecture.md, "Layers"): rooms never imports it. Yet a
room's epoch key must not be destroyed while a hold covers what it protects. So the
compliance app registers, once, in its ``AppConfig.ready``, the functions that answer
(``hold_rules_register``), and the epoch services call them (``hold_rules``) under the
locks their descriptions give.

An explicit registry, not a signal: a question nobody registered an answer for is an
error (``ImproperlyConfigured``), never silently "not held".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class HoldRules:
    """The compliance app's answers."""

    # Take the legal-hold ledger's lock, shared, for the rest of the transaction: no hold
    # is placed or released until it ends. The first lock of the order (before rooms).
    ledger_lock: Callable[[], None]
    # Whether an active hold covers anything of the room (its id): a hold that names it,
    # or a custodian's messages or files in it.
    room_held: Callable[[int], bool]
    # Whether an active hold covers anything an epoch (room id, epoch number) protects.
    epoch_held: Callable[[int, int], bool]


_registered: list[HoldRules] = []


def hold_rules_register(rules: HoldRules) -> None:
    """Register the compliance app's answers (a second registration replaces the first)."""
    _registered[:] = [rules]


def hold_rules() -> HoldRules:
    """The registered answers; ``ImproperlyConfigured`` if none were registered (a key
    must not be destroyed because nobody was asked about holds)."""
    if not _registered:
        raise ImproperlyConfigured(
            "the compliance app registers its hold rules in ComplianceConfig.ready; "
            "is it installed?"
        )
    return _registered[0]


def room_legal_hold(room_id: int) -> bool:
    """Whether the room is under legal hold (derived from the active holds)."""
    return hold_rules().room_held(room_id)
