"""What an account change must ask of the rooms, answered by the rooms app.

``accounts`` sits below ``rooms`` in the layers (docs/architecture.md, "Layers"): it
never imports it. Yet two of its changes are bound by rooms' rules: a role change
reports the rooms that now break an information barrier, an account that is the
only acting owner of a room is neither deactivated nor made read-only on chat (the
room would be left with nobody to manage it), and a deactivation takes the person's
room keys away (a reactivation gives back what the rooms' history rules allow), and a
new display name is told to the members of the person's rooms. So
the rooms app registers, once, in its
``AppConfig.ready``, the functions that answer (``room_hooks_register``), and the
account services call them (``room_hooks``) inside their transactions, at the point of
the lock order each function's description gives.

An explicit registry, not Django signals: one answerer per question, called where the
lock order needs it, and a question nobody registered an answer for is an error
(``ImproperlyConfigured``), never silently "no rooms".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from accounts.models import User


@dataclass(frozen=True)
class HeldRoom:
    """A room only the person asked about can manage: its id and its name."""

    id: int
    name: str


@dataclass(frozen=True)
class RoomHooks:
    """The rooms' answers, each called inside the account change's transaction."""

    # Lock the rooms ``user`` is a member of (the lock order's third step), after the
    # caller locked the groups that change and the user's row.
    rooms_lock: Callable[[User], None]
    # The same for several people at once: every room any of them is in, in one ascending
    # order (so a change of many people's groups never locks a room before a person).
    rooms_lock_all: Callable[[Sequence[User]], None]
    # The rooms ``user`` is the only acting owner of, which no change may leave without
    # one; locks them. Called with the user's row locked.
    rooms_owned_only_by: Callable[[User], Sequence[HeldRoom]]
    # The rooms ``user`` is in that violate an information barrier, with the pairs
    # that do (as ``rooms.services.barriers.user_barrier_violations`` reports them).
    barrier_violations: Callable[[User], dict[int, list[Any]]]
    # A deactivation: delete ``user``'s sealed room keys and make each of their rooms
    # start a new epoch without them at its next content; their memberships stay,
    # dormant. Returns, per room id, how many key copies were deleted. Called with the
    # user's row and their rooms (``rooms_lock``) locked, before the audit append.
    memberships_suspend: Callable[[User], dict[int, int]]
    # A reactivation: ``user``'s dormant memberships come back, each as a newcomer's
    # (the room's history rule decides what they read and which keys they receive).
    # Returns, per room id, how many keys were sealed to them. Called with the user's
    # row and their rooms (``rooms_lock``) locked, before the audit append.
    memberships_resume: Callable[[User], dict[int, int]]
    # A display name change: tell the members of ``user``'s rooms (``member.updated``,
    # after commit). Returns the room ids told. Called with the user's row locked; takes
    # no lock.
    member_renamed: Callable[[User], Sequence[int]]


_registered: list[RoomHooks] = []


def room_hooks_register(hooks: RoomHooks) -> None:
    """Register the rooms' answers (once; a second registration replaces the first, so
    a reloaded app config does not ask twice)."""
    _registered[:] = [hooks]


def room_hooks() -> RoomHooks:
    """The registered answers; ``ImproperlyConfigured`` if the rooms app registered none
    (an account change must not pass a rule because nobody was asked)."""
    if not _registered:
        raise ImproperlyConfigured(
            "the rooms app registers its account hooks in RoomsConfig.ready; is it installed?"
        )
    return _registered[0]


def rooms_named(rooms: Sequence[HeldRoom], *, shown: int = 5) -> str:
    """``“A”, “B” and 3 more rooms``: the rooms a refusal names, the first ``shown``."""
    names = ", ".join(f"“{room.name}”" for room in rooms[:shown])
    extra = len(rooms) - shown
    return names + (f" and {extra} more rooms" if extra > 0 else "")
