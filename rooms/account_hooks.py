"""The rooms' answers to the account services' questions (``accounts.hooks``).

Registered in ``RoomsConfig.ready``: ``accounts`` sits below ``rooms`` and never
imports it, so it asks through the registry what a role change or a deactivation must
respect here (information barriers, and a room keeping an owner who can act), and what
a deactivation and a reactivation do to the person's rooms (their keys), and whom a
new display name is told to.
"""

from __future__ import annotations

from accounts.hooks import HeldRoom, RoomHooks
from accounts.models import User
from rooms.services.barriers import people_rooms_lock, user_barrier_violations, user_rooms_lock
from rooms.services.membership import (
    member_renamed_publish,
    memberships_resume,
    memberships_suspend,
    rooms_owned_only_by,
)


def _rooms_owned_only_by(user: User) -> list[HeldRoom]:
    return [HeldRoom(id=room.pk, name=room.name) for room in rooms_owned_only_by(user=user)]


ROOM_HOOKS = RoomHooks(
    rooms_lock=lambda user: user_rooms_lock(user=user),
    rooms_lock_all=lambda users: people_rooms_lock(users=users),
    rooms_owned_only_by=_rooms_owned_only_by,
    barrier_violations=lambda user: dict(user_barrier_violations(user=user)),
    memberships_suspend=lambda user: memberships_suspend(user=user),
    memberships_resume=lambda user: memberships_resume(user=user),
    member_renamed=lambda user: member_renamed_publish(user=user),
)
