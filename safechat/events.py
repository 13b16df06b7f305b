"""Every event a SafeChat client hears, what it carries, and the one way to publish it.

A service that changes something a live client shows publishes an event, in its
transaction, with :func:`publish`; the event goes out only once the transaction commits
(at once when none is open), so nothing is announced that did not commit. The socket
(``rooms.socket``) dispatches on the same names, and the portal reads them from a data
block of the page (:func:`client_names`), never from strings typed again in the chat
client (static/safechat/chat/).

* :class:`Event`: the name of every frame the server sends a client (and
  ``access.changed``, a hint to the socket itself), with one payload type per event in
  :data:`PAYLOADS` (and in :data:`FRAMES` where the client's frame differs) and who
  hears it in :data:`AUDIENCE`;
* :class:`Frame`: the name of every frame a client sends;
* groups on the channel layer: ``room.<id>`` for everyone subscribed to a room,
  ``user.<id>`` for every socket of one person.

What crosses the layer (Redis) is ids, event names and, for a new message, its stored
ciphertext (:class:`SealedMessage`): never text. Each socket turns an event into the
frame its reader may see (docs/realtime.md, "Frames").

Not to be confused with ``safechat.keyring.events``: that is the keyring's internal
pub/sub, telling every server process to drop cached keys and renderings after a key
change; no client ever hears it.

A new event: a member of :class:`Event`, its payload type, its entry in
:data:`PAYLOADS` and :data:`AUDIENCE`; ``publish(Event.X, ...)`` in the service; a
handler under ``EVENT.X`` in the chat client's ``chat/main.js`` (the socket forwards a
room or user event's payload as it is unless it has a handler of its own).
``tests/safechat/test_events.py`` checks every service's events against these types,
``tests/rooms/test_socket_contract.py`` every frame a socket sends.

This module is a lower layer: it imports no app of the project.
"""

# No ``from __future__ import annotations``: TypedDict must see ``NotRequired`` itself.
import asyncio
import logging
import os
from enum import Enum, StrEnum
from typing import Any, NotRequired, TypedDict

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import transaction

from safechat import metrics

logger = logging.getLogger(__name__)


class Event(StrEnum):
    """The ``type`` of every frame the server sends a client, and ``access.changed``."""

    # Published by services after commit, to the room's group.
    MESSAGE_NEW = "message.new"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_REACTIONS = "message.reactions"
    MESSAGE_DELETED = "message.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    MEMBER_UPDATED = "member.updated"
    ROOM_UPDATED = "room.updated"  # an event; the audit action of the same name is another
    ROOM_ARCHIVED = "room.archived"
    READ_MARKER = "read.marker"
    # Published by a socket, to the room's group.
    TYPING = "typing"
    PRESENCE = "presence"
    # Published by services after commit, to one person's group.
    ROOM_GRANTED = "room.granted"
    ROOM_REVOKED = "room.revoked"
    ROOM_MUTED = "room.muted"  # the person's own mute setting of a room, for their other tabs
    MENTION = "mention"
    ACCESS_CHANGED = "access.changed"  # heard by the socket only: it re-checks its session
    # A socket's own answers to its client; never published.
    PRESENCE_SNAPSHOT = "presence.snapshot"
    ACK = "ack"
    SYNC_DONE = "sync.done"
    PONG = "pong"
    ERROR = "error"
    SESSION_EXPIRING = "session.expiring"
    SESSION_EXTENDED = "session.extended"
    SESSION_ENDED = "session.ended"


class Frame(StrEnum):
    """The ``type`` of every frame a client sends (docs/realtime.md, "Frames")."""

    SYNC = "sync"
    MESSAGE_POST = "message.post"
    MESSAGE_EDIT = "message.edit"
    MESSAGE_DELETE = "message.delete"
    TYPING = "typing"
    READ = "read"
    PRESENCE = "presence"
    PRESENCE_GET = "presence.get"
    SESSION_EXTEND = "session.extend"
    PING = "ping"


class MemberChange(StrEnum):
    """What a ``member.updated`` event says changed about the member."""

    ROLE = "role"  # their role in the room
    NAME = "name"  # their display name (``accounts.services.user_profile_update``)


class Audience(Enum):
    ROOM = "room"  # the group room.<room_id>: every socket subscribed to the room
    USER = "user"  # the group user.<id>: every socket of one person
    SOCKET = "socket"  # one socket's answer to its own client, never published


# --- payloads: what each event carries (for a published event, through the layer) -------
class MentionedUser(TypedDict):
    """A member a new message names (``@username``), as the mention is shown."""

    user_id: int
    username: str
    name: str  # display name


class SealedMessage(TypedDict):
    """A new message as stored: its ciphertext and what binds it (``rooms.wire``)."""

    uid: str
    seq: int
    epoch: int
    revision: int
    sender_id: int
    sender: str  # username
    sender_name: str  # display name
    mentions: list[MentionedUser]
    parent_id: int | None
    created_at: str  # ISO 8601
    ciphertext: bytes
    # The message shares a file: readers load it (``rooms.attachments``) to open its name.
    attachment: bool


class MessageNew(TypedDict):
    room_id: int
    message_id: int
    sealed: SealedMessage


class MessageChanged(TypedDict):
    """``message.edited``, ``message.reactions``: readers load the message again."""

    room_id: int
    message_id: int


class MessageDeleted(TypedDict):
    room_id: int
    message_id: int


class MemberChanged(TypedDict):
    """``member.added``, ``member.removed``: ``user_id`` is the member."""

    room_id: int
    user_id: int


class MemberUpdated(TypedDict):
    """``member.updated``: ``user_id`` is the member; ``change`` says what changed, so a
    client tells the member their role changed, not that their name did."""

    room_id: int
    user_id: int
    change: str  # a MemberChange: role, name


class RoomChanged(TypedDict):
    """``room.updated``, ``room.archived``, ``room.granted``, ``room.revoked``."""

    room_id: int


class RoomMuted(TypedDict):
    """``room.muted``: how the room now notifies its member (``Membership.Mute``)."""

    room_id: int
    mute: str  # off, messages, all


class ReadMarker(TypedDict):
    room_id: int
    user_id: int
    message_id: int


class Typing(TypedDict):
    room_id: int
    user_id: int


class Presence(TypedDict):
    room_id: int
    user_id: int
    state: str  # online, away, offline: the user's state over all their sockets


class Mention(TypedDict):
    room_id: int
    message_id: int


class AccessChanged(TypedDict):
    reason: str


class PresenceSnapshot(TypedDict):
    room_id: int
    states: dict[str, str]  # user id -> online | away; members not named are offline


class Ack(TypedDict):
    message_id: int
    client_id: NotRequired[str]


class SyncDone(TypedDict):
    more: dict[str, int]  # room id -> the cursor to continue from


class Nothing(TypedDict):
    """``pong``, ``session.extended``: the type says it all."""


class Error(TypedDict):
    code: str
    detail: str
    client_id: NotRequired[str]  # the client_id of the frame it answers, when it had one
    room_id: NotRequired[int]
    retry_after: NotRequired[int]  # rate_limited: whole seconds to wait before trying again


class SessionExpiring(TypedDict):
    reason: str  # idle, absolute
    seconds: int
    extendable: bool


class SessionEnded(TypedDict):
    reason: str | None


PAYLOADS: dict[Event, type[Any]] = {
    Event.MESSAGE_NEW: MessageNew,
    Event.MESSAGE_EDITED: MessageChanged,
    Event.MESSAGE_REACTIONS: MessageChanged,
    Event.MESSAGE_DELETED: MessageDeleted,
    Event.MEMBER_ADDED: MemberChanged,
    Event.MEMBER_REMOVED: MemberChanged,
    Event.MEMBER_UPDATED: MemberUpdated,
    Event.ROOM_UPDATED: RoomChanged,
    Event.ROOM_ARCHIVED: RoomChanged,
    Event.READ_MARKER: ReadMarker,
    Event.TYPING: Typing,
    Event.PRESENCE: Presence,
    Event.ROOM_GRANTED: RoomChanged,
    Event.ROOM_REVOKED: RoomChanged,
    Event.ROOM_MUTED: RoomMuted,
    Event.MENTION: Mention,
    Event.ACCESS_CHANGED: AccessChanged,
    Event.PRESENCE_SNAPSHOT: PresenceSnapshot,
    Event.ACK: Ack,
    Event.SYNC_DONE: SyncDone,
    Event.PONG: Nothing,
    Event.ERROR: Error,
    Event.SESSION_EXPIRING: SessionExpiring,
    Event.SESSION_EXTENDED: Nothing,
    Event.SESSION_ENDED: SessionEnded,
}


class MessageFrame(TypedDict):
    """``message.new``, ``message.edited``, ``message.reactions`` as a client receives them:
    the message as this reader sees it (``rooms.wire.WireMessage``)."""

    room_id: int
    message: dict[str, Any]


# What a client receives as each event's frame (without its ``type``): the published
# payload, except where the socket makes it the reader's own. ``access.changed`` is
# heard by the socket only.
FRAMES: dict[Event, type[Any]] = {
    **{event: kind for event, kind in PAYLOADS.items() if event is not Event.ACCESS_CHANGED},
    Event.MESSAGE_NEW: MessageFrame,
    Event.MESSAGE_EDITED: MessageFrame,
    Event.MESSAGE_REACTIONS: MessageFrame,
}

_ROOM_EVENTS = {
    Event.MESSAGE_NEW,
    Event.MESSAGE_EDITED,
    Event.MESSAGE_REACTIONS,
    Event.MESSAGE_DELETED,
    Event.MEMBER_ADDED,
    Event.MEMBER_REMOVED,
    Event.MEMBER_UPDATED,
    Event.ROOM_UPDATED,
    Event.ROOM_ARCHIVED,
    Event.READ_MARKER,
    Event.TYPING,
    Event.PRESENCE,
}
_USER_EVENTS = {
    Event.ROOM_GRANTED,
    Event.ROOM_REVOKED,
    Event.ROOM_MUTED,
    Event.MENTION,
    Event.ACCESS_CHANGED,
}
AUDIENCE: dict[Event, Audience] = {
    event: Audience.ROOM
    if event in _ROOM_EVENTS
    else Audience.USER
    if event in _USER_EVENTS
    else Audience.SOCKET
    for event in Event
}

# Published by a socket itself (typing, presence), never by a service.
SOCKET_PUBLISHED = frozenset({Event.TYPING, Event.PRESENCE})

# The handler a layer message reaches on the consumer (Channels maps "room.event" to
# ``room_event``); the event's name travels beside its payload as ``event``.
ROOM_ENVELOPE = "room.event"
USER_ENVELOPE = "user.event"


def room_group(room_id: int) -> str:
    """The group of every socket subscribed to a room."""
    return f"room.{room_id}"


def user_group(user_id: int) -> str:
    """The group of every socket of one person: a name that never changes, unlike a
    session key (which rotates at verification and at a password change)."""
    return f"user.{user_id}"


def client_names() -> dict[str, dict[str, str]]:
    """The names the portal keys its handlers and frames by, for the page's data block:
    ``{"events": {"MESSAGE_NEW": "message.new", ...}, "frames": {"PING": "ping", ...},
    "member_changes": {"ROLE": "role", "NAME": "name"}}``."""
    return {
        "events": {event.name: event.value for event in Event},
        "frames": {frame.name: frame.value for frame in Frame},
        "member_changes": {change.name: change.value for change in MemberChange},
    }


def envelope(
    event: Event, payload: dict[str, Any], *, to_user: int | None = None
) -> tuple[str, dict[str, Any]]:
    """(group, layer message) for a published ``event``.

    Raises TypeError for an event that is not published (a socket's own answer), a
    person's event without ``to_user`` (or a room's with one), or a payload whose keys
    are not those of the event's payload type.
    """
    audience = AUDIENCE[event]
    kind: type[Any] = PAYLOADS[event]
    keys = set(payload)
    if not kind.__required_keys__ <= keys <= kind.__required_keys__ | kind.__optional_keys__:
        raise TypeError(f"{event} carries {kind.__name__}, not {sorted(keys)}")
    if audience is Audience.ROOM and to_user is None:
        return room_group(int(payload["room_id"])), {
            "type": ROOM_ENVELOPE,
            "event": event.value,
            **payload,
        }
    if audience is Audience.USER and to_user is not None:
        return user_group(to_user), {"type": USER_ENVELOPE, "event": event.value, **payload}
    raise TypeError(f"{event} is not published to {'a person' if to_user else 'a room'}")


def publish(event: Event, /, *, to_user: int | None = None, **payload: Any) -> None:
    """Publish ``event`` once the current transaction commits (at once when none is open).

    A room's event goes to ``room.<payload room_id>``; a person's (``to_user``) to
    ``user.<to_user>``. Events published in one transaction go out in the order they were
    published, and a process sends them in commit order. Best effort after commit: a
    channel layer that is down loses the event (logged); clients resync from the
    database, and sockets re-check their session on their own timers. Raises TypeError
    at once for a payload that is not the event's (see :func:`envelope`).
    """
    group, message = envelope(event, payload, to_user=to_user)
    transaction.on_commit(lambda: deliver(group, message))


async def publish_now(layer: BaseChannelLayer, event: Event, /, **payload: Any) -> None:
    """Publish a room's ``event`` from a socket, on the event loop, outside any
    transaction (typing, presence). Raises what the layer raises."""
    group, message = envelope(event, payload)
    await layer.group_send(group, message)


# --- delivery: one outbox per event loop keeps commit order ------------------------------
_outboxes: dict[asyncio.AbstractEventLoop, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}


async def _drain(
    layer: BaseChannelLayer, outbox: asyncio.Queue[tuple[str, dict[str, Any]]]
) -> None:
    while True:
        group, message = await outbox.get()
        try:
            await layer.group_send(group, message)
        except Exception:  # clients resync from the database; log and go on
            metrics.channel_layer_failed("send")
            logger.exception("broadcast to %s failed", group)


def _enqueue(loop: asyncio.AbstractEventLoop, layer: BaseChannelLayer, item: Any) -> None:
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = asyncio.Queue()
        loop.create_task(_drain(layer, outbox))
    outbox.put_nowait(item)


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this worker thread serves, when called from ``database_sync_to_async``."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(
        SyncToAsync.threadlocal, "main_event_loop", None
    )
    return loop if loop is not None and loop.is_running() else None


def deliver(group: str, message: dict[str, Any]) -> None:
    """Send a committed event's layer message. From a socket's database thread, hand the
    send to the event loop and return at once (one queue per loop keeps commit order)
    instead of holding the thread that every write of the process waits for; elsewhere,
    send and wait. Never raises: what committed stands.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _serving_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_enqueue, loop, layer, (group, message))
            return
        except RuntimeError:  # the loop closed since it was found running: send from here
            pass
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # the layer (Redis) is down: what committed stands; clients resync
        metrics.channel_layer_failed("send")
        logger.warning("broadcast to %s failed", group, exc_info=True)
