"""Group names and broadcasts for rooms.

What crosses the channel layer (Redis in production) is ids and event names,
never text: each receiving consumer loads the message and decrypts it for its
own user. Every function here is meant to be called from ``transaction.on_commit``.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.realtime import user_group

__all__ = ["room_group", "user_group"]


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def _send(group: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, payload)


def room_event(*, room_id: int, event: str, **ids: int | str | None) -> None:
    """Tell the room's subscribers that something happened; they fetch what it is."""
    _send(room_group(room_id), {"type": "room.event", "event": event, "room_id": room_id, **ids})


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
