"""Room roles mapped to django-guardian object permissions.

Membership is the source of truth; the object permissions mirror it and are
changed only by the membership services, in the same transaction.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from guardian.models import UserObjectPermission

from accounts.models import User
from accounts.selectors import user_reads_chat_only
from rooms.models import Membership, Room

VIEW = "view_room"
POST = "post_message"
UPLOAD = "upload_file"
MANAGE_MEMBERS = "manage_members"
MANAGE_ROOM = "manage_room"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Membership.Role.OWNER: frozenset({VIEW, POST, UPLOAD, MANAGE_MEMBERS, MANAGE_ROOM}),
    Membership.Role.MODERATOR: frozenset({VIEW, POST, UPLOAD, MANAGE_MEMBERS}),
    Membership.Role.MEMBER: frozenset({VIEW, POST, UPLOAD}),
    Membership.Role.READ_ONLY: frozenset({VIEW}),
}
ALL_ROOM_PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())

CREATE_ROOM = "accounts.create_room"


def may_create_rooms(*, user: User) -> bool:
    """Whether ``user``'s organisation role lets them create rooms: the ``room_admin``
    role's ``accounts.create_room``, or everyone when ``SAFECHAT_MEMBERS_CAN_CREATE_ROOMS``
    is on. The one rule; ``rooms.services.room_create`` enforces it (and that a compliance
    officer, read-only on chat, creates nothing), the portal uses it to offer the form."""
    allowed = bool(settings.SAFECHAT_MEMBERS_CAN_CREATE_ROOMS) or user.has_perm(CREATE_ROOM)
    return allowed and not user_reads_chat_only(user=user)


def may_start_conversations(*, user: User) -> bool:
    """Whether ``user`` may start direct conversations: anyone who is not read-only on
    chat (``rooms.services.direct_conversation_create`` enforces it)."""
    return not user_reads_chat_only(user=user)


def _permissions(codenames: frozenset[str]) -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label="rooms", codename__in=codenames))


def room_permissions_set(*, room: Room, user: User, role: str | None) -> None:
    """Make ``user``'s object permissions on ``room`` exactly those of ``role`` (None: none)."""
    content_type = ContentType.objects.get_for_model(Room)
    UserObjectPermission.objects.filter(
        user=user, content_type=content_type, object_pk=str(room.pk)
    ).delete()
    if role is None:
        return
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(
                user=user, permission=permission, content_type=content_type, object_pk=str(room.pk)
            )
            for permission in _permissions(ROLE_PERMISSIONS[role])
        ]
    )


def room_permissions_of(*, room: Room, user: User) -> frozenset[str]:
    """The room permissions ``user`` holds as a member (superusers get nothing extra)."""
    if not user.is_active:
        return frozenset()
    # A role that is read-only on chat (the compliance officer) never posts or manages,
    # even in a room they joined before the role was granted.
    cap = frozenset({VIEW}) if user_reads_chat_only(user=user) else ALL_ROOM_PERMISSIONS
    # One query: the grants count only together with a membership, and only while the
    # user is active as the database says now (``user`` may be an older snapshot).
    return cap & frozenset(
        UserObjectPermission.objects.filter(
            user=user,
            user__is_active=True,
            content_type=ContentType.objects.get_for_model(Room),
            object_pk=str(room.pk),
            user__memberships__room=room,
        ).values_list("permission__codename", flat=True)
    )


def has_room_permission(*, room: Room, user: User, permission: str) -> bool:
    return permission in room_permissions_of(room=room, user=user)
