"""Group names and broadcasts for rooms.

What crosses the channel layer (Redis in production) is ids, event names and, for a
new message, its stored ciphertext: never text. Each receiving socket decrypts with
its own user's copy of the epoch key, or loads the message by id for the other
events. Every function here is meant to be called from ``transaction.on_commit``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer

from accounts.realtime import user_group
from rooms.models import Message

__all__ = ["room_group", "user_group"]


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


logger = logging.getLogger(__name__)

# Per event loop: broadcasts waiting to go out, in commit order, and the task sending them.
_outboxes: dict[asyncio.AbstractEventLoop, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}


async def _drain(
    layer: BaseChannelLayer, outbox: asyncio.Queue[tuple[str, dict[str, Any]]]
) -> None:
    while True:
        group, payload = await outbox.get()
        try:
            await layer.group_send(group, payload)
        except Exception:  # clients resync from the database; log and go on
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


def _send(group: str, payload: dict[str, Any]) -> None:
    """Send after commit. From a socket's database thread, hand the send to the event loop
    and return at once (one queue per loop keeps commit order) instead of holding the
    thread that every write of the process waits for; elsewhere, send and wait.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _serving_loop()
    if loop is not None:
        loop.call_soon_threadsafe(_enqueue, loop, layer, (group, payload))
        return
    try:
        async_to_sync(layer.group_send)(group, payload)
    except Exception:  # the layer (Redis) is down: what committed stands; clients resync
        logger.warning("broadcast to %s failed", group, exc_info=True)


def room_event(*, room_id: int, event: str, **ids: object) -> None:
    """Tell the room's subscribers that something happened; they fetch what it is."""
    _send(room_group(room_id), {"type": "room.event", "event": event, "room_id": room_id, **ids})


def message_posted(*, message: Message, sender_name: str) -> None:
    """``message.new`` carrying the message as stored: ciphertext and what binds it.

    Every subscriber opens it with its own user's key copy, so a message posted to a
    room of N readers costs no database read per reader; a reader without the epoch key
    (removed: removal starts a new epoch) cannot open it.
    """
    room_event(
        room_id=message.room_id,
        event="message.new",
        message_id=message.pk,
        sealed={
            "uid": str(message.uid),
            "seq": message.seq,
            "epoch": message.epoch,
            "revision": message.revision,
            "sender_id": message.sender_id,
            "sender": sender_name,
            "parent_id": message.parent_id,
            "created_at": message.created_at.isoformat(),
            "ciphertext": bytes(message.ciphertext),
        },
    )


def member_removed(*, room_id: int, user_id: int) -> None:
    """Stop delivery to a removed member at once, then tell the others."""
    _send(user_group(user_id), {"type": "room.revoked", "room_id": room_id})
    room_event(room_id=room_id, event="member.removed", user_id=user_id)


def member_added(*, room_id: int, user_id: int) -> None:
    _send(user_group(user_id), {"type": "room.granted", "room_id": room_id})
    room_event(room_id=room_id, event="member.added", user_id=user_id)


def user_mentioned(*, user_id: int, room_id: int, message_id: int) -> None:
    _send(
        user_group(user_id),
        {"type": "user.mentioned", "room_id": room_id, "message_id": message_id},
    )
