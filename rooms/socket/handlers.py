"""The rooms side of the socket: subscriptions, client frames and room events.

Mixed into the consumer (``rooms.consumers``) after authentication; it acts as
``self.user``, which the consumer re-reads with every verdict on the socket's session.
A socket hears a room only while subscribed to it: subscribed after the membership
check, discarded at once on removal. What arrives through the channel layer is ids,
and for a new message its ciphertext (``fanout``); other events are loaded by id
through the selectors (``database``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.http import Http404

from accounts.models import User
from rooms import presence
from rooms.socket import database, fanout, protocol
from rooms.socket.database import in_pool
from rooms.socket.protocol import (
    ClientError,
    error_frame,
    frame_client_id,
    frame_id,
    frame_text,
)
from rooms.write_threads import in_room_thread
from safechat import metrics
from safechat.events import Event, Frame, MessageNew, publish_now, room_group


class RoomSocketMixin:
    """Every room of the socket's user, multiplexed on one socket."""

    channel_layer: Any
    channel_name: str
    room_ids: set[int]
    send_json: Callable[..., Awaitable[None]]
    close: Callable[..., Awaitable[None]]

    user: User  # as read with the socket's last verdict (rooms.consumers), never at connect

    # --- lifecycle -------------------------------------------------------------------------
    async def rooms_join(self) -> None:
        self.room_ids = set()
        self._flood = protocol.FloodCounter()
        self._last_typing: dict[int, float] = {}
        self._sync_pacer = protocol.SyncPacer()
        self._presence_state: str | None = None
        self._presence_refreshed = 0.0
        room_ids = await in_pool(database.viewable_room_ids)(self.user)
        for room_id in room_ids:
            await self._subscribe(room_id)
        await self._presence_record(presence.ONLINE)

    async def rooms_leave(self) -> None:
        if getattr(self, "_presence_state", None) is not None:
            self._presence_state = None
            state = await in_pool(presence.presence_clear)(
                user_id=self.user.pk, socket_id=self.channel_name
            )
            await self._presence_announce(state)
        for room_id in list(getattr(self, "room_ids", set())):
            await self._unsubscribe(room_id)

    async def rooms_refresh(self) -> None:
        """Join every subscribed room's group again (restarts the layer's group expiry)."""
        for room_id in list(self.room_ids):
            await self.channel_layer.group_add(room_group(room_id), self.channel_name)

    async def _subscribe(self, room_id: int) -> None:
        await self.channel_layer.group_add(room_group(room_id), self.channel_name)
        self.room_ids.add(room_id)

    async def _unsubscribe(self, room_id: int) -> None:
        await self.channel_layer.group_discard(room_group(room_id), self.channel_name)
        self.room_ids.discard(room_id)

    # --- presence ----------------------------------------------------------------------------
    async def _presence_record(self, state: str) -> None:
        """Record this socket's state and announce the user's, which other tabs may decide."""
        self._presence_state = state
        self._presence_refreshed = time.monotonic()
        overall = await in_pool(presence.presence_set)(
            user_id=self.user.pk, socket_id=self.channel_name, state=state
        )
        await self._presence_announce(overall)

    async def _presence_announce(self, state: str) -> None:
        for room_id in self.room_ids:
            await publish_now(
                self.channel_layer,
                Event.PRESENCE,
                room_id=room_id,
                user_id=self.user.pk,
                state=state,
            )

    # --- frames from the client ------------------------------------------------------------
    async def rooms_flood_check(self, content: dict[str, Any], weight: int = 1) -> bool:
        """Count the frame ``content`` (``weight`` frames' worth) against the socket's flood
        limit; False when over it: after a ``rate_limited`` error answering that frame
        (its ``client_id``, and ``retry_after``), or closing with 4429 at the third
        strike."""
        if not self._flood.over(weight):
            return True
        if self._flood.strikes >= protocol.FLOOD_STRIKES_BEFORE_CLOSE:
            await self.close(code=protocol.CLOSE_FLOODING)
            return False
        await self.send_json(
            error_frame(content, "rate_limited", "slow down", retry_after=self._flood.retry_after())
        )
        return False

    async def rooms_frame(self, content: dict[str, Any]) -> None:
        """Handle one client frame; mistakes become error frames, never a closed socket."""
        if not await self.rooms_flood_check(content):
            return
        handler = FRAME_HANDLERS.get(content["type"])
        if handler is None:
            await self.send_json(error_frame(content, "unknown_type", "unknown frame type"))
            return
        await protocol.frame_answered(self.send_json, content, lambda: handler(self, content))

    async def _on_ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": Event.PONG})
        state = self._presence_state
        refreshed = time.monotonic() - self._presence_refreshed
        if state is not None and refreshed > protocol.PRESENCE_REFRESH:
            self._presence_refreshed = time.monotonic()
            await in_pool(presence.presence_set)(
                user_id=self.user.pk, socket_id=self.channel_name, state=state
            )

    async def _on_presence_get(self, content: dict[str, Any]) -> None:
        room_id = frame_id(content, "room_id")
        if room_id not in self.room_ids:
            raise ClientError("not_found", "no such room")
        member_ids = await in_pool(database.room_member_ids)(self.user, room_id)
        states = await in_pool(presence.presence_of)(user_ids=member_ids)
        await self.send_json(
            {
                "type": Event.PRESENCE_SNAPSHOT,
                "room_id": room_id,
                "states": {str(user_id): state for user_id, state in states.items()},
            }
        )

    async def _on_sync(self, content: dict[str, Any]) -> None:
        """Send what was missed, bounded per frame: at most SYNC_ROOMS_PER_FRAME rooms and
        SYNC_PAGE messages of each. ``sync.done`` maps each room with more to fetch to the
        cursor to continue from (``more``); the client sends ``sync`` again with those."""
        rooms = content.get("rooms")
        if not isinstance(rooms, dict):
            raise ClientError("bad_frame", "rooms must map room ids to last seen message ids")
        if len(rooms) > protocol.SYNC_ROOMS_PER_FRAME:
            raise ClientError(
                "bad_frame", f"at most {protocol.SYNC_ROOMS_PER_FRAME} rooms per sync frame"
            )
        cursors = [
            (frame_id({"id": key}, "id"), frame_id({"after": last}, "after"))
            for key, last in rooms.items()
        ]
        more: dict[str, int] = {}  # room id -> the cursor to continue from
        for room_id, after in cursors:
            await self._sync_pacer.turn()
            try:
                missed = await in_pool(database.messages_missed)(self.user, room_id, after)
            except Http404:
                # A room lost while offline must not stop the resync of the others.
                await self.send_json(
                    error_frame(content, "not_found", "no such room", room_id=room_id)
                )
                continue
            self._sync_pacer.spend(1 + len(missed))
            for message in missed:
                await self.send_json(
                    {"type": Event.MESSAGE_NEW, "room_id": room_id, "message": message}
                )
            if len(missed) >= protocol.SYNC_PAGE:
                more[str(room_id)] = int(missed[-1]["id"])
        await self.send_json({"type": Event.SYNC_DONE, "more": more})

    async def _on_post(self, content: dict[str, Any]) -> None:
        room_id = frame_id(content, "room_id")
        if room_id not in self.room_ids:  # never visible to this socket, or revoked
            raise ClientError("not_found", "no such room or message")
        parent = content.get("parent_id")
        parent_id = frame_id(content, "parent_id") if parent is not None else None
        message_id = await in_room_thread(room_id, database.message_store)(
            self.user, room_id, frame_text(content), parent_id, content.get("client_id")
        )
        frame: dict[str, Any] = {"type": Event.ACK, "message_id": message_id}
        client_id = frame_client_id(content)
        if client_id is not None:
            frame["client_id"] = client_id
        await self.send_json(frame)

    async def _on_edit(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(database.message_change)(
            self.user, frame_id(content, "message_id"), frame_text(content)
        )

    async def _on_delete(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(database.message_remove)(
            self.user, frame_id(content, "message_id")
        )

    async def _on_read(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(database.read_marker_store)(
            self.user, frame_id(content, "room_id"), frame_id(content, "message_id")
        )

    async def _on_typing(self, content: dict[str, Any]) -> None:
        room_id = frame_id(content, "room_id")
        if room_id not in self.room_ids:
            raise ClientError("not_found", "no such room")
        now = time.monotonic()
        if now - self._last_typing.get(room_id, 0.0) < protocol.TYPING_MIN_INTERVAL:
            return
        self._last_typing[room_id] = now
        # Asked at most once per interval: typing is shown only by those who may post.
        if not await in_pool(database.may_type)(self.user, room_id):
            raise ClientError("forbidden", "you cannot write in this room")
        await publish_now(self.channel_layer, Event.TYPING, room_id=room_id, user_id=self.user.pk)

    async def _on_presence(self, content: dict[str, Any]) -> None:
        state = content.get("state")
        if state not in (presence.ONLINE, presence.AWAY):
            raise ClientError("bad_frame", "state must be online or away")
        await self._presence_record(str(state))

    # --- events from the channel layer ----------------------------------------------------
    async def room_event(self, event: dict[str, Any]) -> None:
        """An event published to a room's group (``safechat.events``): sent on as the frame
        of the same name with the same payload, unless ROOM_EVENT_HANDLERS make it the
        reader's own (a message opened or loaded for them; typing never to its typist)."""
        room_id = int(event["room_id"])
        if room_id not in self.room_ids:
            return  # discarded, or a late event for a room this socket left
        name = event["event"]
        handler = ROOM_EVENT_HANDLERS.get(name)
        if handler is not None:
            await handler(self, event)
        elif name in _EVENTS:
            await self.send_json(_frame_of(event))

    async def _message_new(self, event: dict[str, Any]) -> None:
        sealed: MessageNew = {
            "room_id": event["room_id"],
            "message_id": event["message_id"],
            "sealed": event["sealed"],
        }
        message = await fanout.message_new_for(self.user, sealed)
        if message is not None:
            await self.send_json(
                {"type": Event.MESSAGE_NEW, "room_id": sealed["room_id"], "message": message}
            )
            metrics.delivered(created_at=message["created_at"])

    async def _message_changed(self, event: dict[str, Any]) -> None:
        message = await in_pool(database.message_loaded)(self.user, int(event["message_id"]))
        if message is not None:
            await self.send_json(
                {"type": event["event"], "room_id": int(event["room_id"]), "message": message}
            )

    async def _typing(self, event: dict[str, Any]) -> None:
        if event["user_id"] != self.user.pk:
            await self.send_json(_frame_of(event))

    async def rooms_user_event(self, event: dict[str, Any]) -> None:
        """An event published to this socket's person (``safechat.events``), other than
        ``access.changed`` (the consumer's): sent on as it is unless USER_EVENT_HANDLERS
        act on it first."""
        name = event["event"]
        handler = USER_EVENT_HANDLERS.get(name)
        if handler is not None:
            await handler(self, event)
        elif name in _EVENTS:
            await self.send_json(_frame_of(event))

    async def _room_revoked(self, event: dict[str, Any]) -> None:
        """Removed from a room: stop delivery at once, then tell the client."""
        room_id = int(event["room_id"])
        await self._unsubscribe(room_id)
        await self.send_json({"type": Event.ROOM_REVOKED, "room_id": room_id})

    async def _room_granted(self, event: dict[str, Any]) -> None:
        room_id = int(event["room_id"])
        if await in_pool(database.room_viewable)(self.user, room_id):
            await self._subscribe(room_id)
            await self.send_json({"type": Event.ROOM_GRANTED, "room_id": room_id})


def _frame_of(event: dict[str, Any]) -> dict[str, Any]:
    """The client frame of a layer event: its name as ``type``, then its payload."""
    payload = {k: v for k, v in event.items() if k not in ("type", "event")}
    return {"type": event["event"], **payload}


_EVENTS = frozenset(Event)
Handler = Callable[[Any, dict[str, Any]], Awaitable[None]]

# Keyed by the names the portal reads from the page (``safechat.events.client_names``).
FRAME_HANDLERS: dict[str, Handler] = {
    Frame.PING: RoomSocketMixin._on_ping,
    Frame.SYNC: RoomSocketMixin._on_sync,
    Frame.MESSAGE_POST: RoomSocketMixin._on_post,
    Frame.MESSAGE_EDIT: RoomSocketMixin._on_edit,
    Frame.MESSAGE_DELETE: RoomSocketMixin._on_delete,
    Frame.READ: RoomSocketMixin._on_read,
    Frame.TYPING: RoomSocketMixin._on_typing,
    Frame.PRESENCE: RoomSocketMixin._on_presence,
    Frame.PRESENCE_GET: RoomSocketMixin._on_presence_get,
}
ROOM_EVENT_HANDLERS: dict[str, Handler] = {
    Event.MESSAGE_NEW: RoomSocketMixin._message_new,
    Event.MESSAGE_EDITED: RoomSocketMixin._message_changed,
    Event.MESSAGE_REACTIONS: RoomSocketMixin._message_changed,
    Event.TYPING: RoomSocketMixin._typing,
}
USER_EVENT_HANDLERS: dict[str, Handler] = {
    Event.ROOM_REVOKED: RoomSocketMixin._room_revoked,
    Event.ROOM_GRANTED: RoomSocketMixin._room_granted,
}
