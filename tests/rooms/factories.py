from __future__ import annotations

from accounts.models import User
from accounts.roles import Role
from rooms.models import Membership, Room
from rooms.services import membership_add, room_create
from tests.accounts.factories import grant_role, make_user


def make_room_admin(**fields: object) -> User:
    user = grant_role(make_user(**fields), Role.ROOM_ADMIN)
    return User.objects.get(pk=user.pk)  # fresh permission cache


def make_room(
    *,
    owner: User | None = None,
    members: tuple[User, ...] = (),
    history_visible: bool = False,
    role: str = Membership.Role.MEMBER,
    name: str = "Desk talk",
    visibility: str = Room.Visibility.PRIVATE,
) -> Room:
    """A room created through the real services, so its keys and permissions are real."""
    if owner is None:
        owner = make_room_admin()
    elif not owner.has_perm("accounts.create_room"):
        owner = User.objects.get(pk=grant_role(owner, Role.ROOM_ADMIN).pk)
    room = room_create(
        actor=owner, name=name, history_visible=history_visible, visibility=visibility
    )
    for member in members:
        membership_add(actor=owner, room=room, user=member, role=role)
    return room
