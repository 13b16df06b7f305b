"""The socket's synchronous work, run off the event loop: reads and writes through the
selectors and services, and decryption that needs a key copy from the database.

Posts go to their room's writer thread (``rooms.write_threads``); other writes through
``database_sync_to_async``. Reads fan out over the thread pool (:func:`in_pool`), so a
burst of readers does not queue behind writes (each pool thread keeps its own
database connection). Every function here acts as ``user``, whose access the
selectors and services check again.
"""

from __future__ import annotations

from typing import Any

from channels.db import DatabaseSyncToAsync
from django.http import Http404

from accounts.models import User
from rooms import permissions as perms
from rooms import selectors, services
from rooms.models import Room
from rooms.permissions import room_permissions_of
from rooms.socket.protocol import SYNC_PAGE
from rooms.wire import WireMessage, message_json


def in_pool(func: Any) -> Any:
    """``func`` as a coroutine run on the thread pool (not the process's one database thread)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def viewable_room_ids(user: User) -> list[int]:
    return list(selectors.rooms_for_user(user=user).values_list("pk", flat=True))


def room_member_ids(user: User, room_id: int) -> list[int]:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    return list(selectors.room_members(user=user, room=room).values_list("user_id", flat=True))


def room_viewable(user: User, room_id: int) -> bool:
    return selectors.rooms_for_user(user=user).filter(pk=room_id).exists()


def may_type(user: User, room_id: int) -> bool:
    """Whether ``user`` may say they are typing in ``room_id``: whoever may post there
    (``post_message``), while the room is live. A compliance officer or a read-only
    member writes nothing, nobody writes in an archived room, and nobody an information
    barrier separates from another member writes there (``require_unseparated``)."""
    room = Room.objects.filter(pk=room_id).first()
    if room is None or room.is_archived:
        return False
    if perms.POST not in room_permissions_of(room=room, user=user):
        return False
    return services.room_barrier_separating(room_id=room.pk, user_id=user.pk) is None


def messages_missed(user: User, room_id: int, after: int) -> list[WireMessage]:
    """Up to SYNC_PAGE messages of the room after ``after``, oldest first."""
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    page = selectors.message_page(reader=user, room=room, after=after, limit=SYNC_PAGE)
    page.reverse()  # oldest first, as they happened
    return [message_json(m) for m in page]


def message_loaded(user: User, message_id: int) -> WireMessage | None:
    """The message as ``user`` sees it now; None if they may no longer see it."""
    try:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    except Http404:
        return None
    return message_json(selectors.message_view(reader=user, message=message))


def message_store(
    user: User, room_id: int, text: str, parent_id: int | None, client_id: str | None
) -> int:
    """Post; returns the message's id. The socket checked the room when it subscribed;
    the service locks and reloads it, and checks the permission again under that lock.
    ``client_id`` makes a repeated frame ("send again") return the original message
    instead of a second one."""
    room = Room(pk=room_id)
    return services.message_post(
        sender=user, room=room, text=text, parent_id=parent_id, client_key=client_id
    ).pk


def message_change(user: User, message_id: int, text: str) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_edit(actor=user, message=message, text=text)


def message_remove(user: User, message_id: int) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_delete(actor=user, message=message)


def read_marker_store(user: User, room_id: int, message_id: int) -> None:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    services.read_marker_set(actor=user, room=room, message_id=message_id)
