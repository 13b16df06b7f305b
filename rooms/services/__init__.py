"""Writes on rooms: one function per action, used by the portal, the API and the socket.

The file vault (``files.services``) shares files as room messages and refuses in the
rooms' terms: it uses the message and refusal functions exported here, nothing private.
"""

from rooms.services._common import (
    permission_refused,
    require_not_archived,
    require_unseparated,
    require_writable,
    room_barrier_separating,
    room_refused,
)
from rooms.services.barriers import (
    barrier_conflicts,
    barrier_create,
    barrier_delete,
    group_create,
    group_members_set,
    room_barrier_violations,
    user_groups_change,
)
from rooms.services.membership import (
    membership_add,
    membership_mute_set,
    membership_remove,
    membership_role_change,
    room_invitation_accept,
    room_invitation_send,
    room_join,
)
from rooms.services.messages import (
    MAX_MESSAGE_BYTES,
    message_delete,
    message_edit,
    message_file_insert,
    message_file_withdraw,
    message_post,
    reaction_toggle,
    read_marker_set,
)
from rooms.services.rooms import (
    direct_conversation_create,
    room_archive,
    room_create,
    room_key_rotate,
    room_manage_require,
    room_unarchive,
    room_update,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "barrier_conflicts",
    "barrier_create",
    "barrier_delete",
    "direct_conversation_create",
    "group_create",
    "group_members_set",
    "membership_add",
    "membership_mute_set",
    "membership_remove",
    "membership_role_change",
    "message_delete",
    "message_edit",
    "message_file_insert",
    "message_file_withdraw",
    "message_post",
    "permission_refused",
    "reaction_toggle",
    "read_marker_set",
    "require_not_archived",
    "require_unseparated",
    "require_writable",
    "room_archive",
    "room_barrier_separating",
    "room_barrier_violations",
    "room_create",
    "room_invitation_accept",
    "room_invitation_send",
    "room_join",
    "room_key_rotate",
    "room_manage_require",
    "room_refused",
    "room_unarchive",
    "room_update",
    "user_groups_change",
]
