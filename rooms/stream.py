"""The rooms side of the WebSocket: one socket multiplexes every room of its user.

Protocol (JSON frames; documented in docs/realtime.md):

client -> server
  {"type": "sync", "rooms": {"<room id>": <last message id seen>}}   resend what was missed
  {"type": "message.post", "room_id", "text", "parent_id"?, "client_id"?}
  {"type": "message.edit", "message_id", "text"}
  {"type": "message.delete", "message_id"}
  {"type": "typing", "room_id"}
  {"type": "read", "room_id", "message_id"}
  {"type": "presence", "state": "online" | "away"}
  {"type": "ping"}

server -> client
  {"type": "message.new" | "message.edited" | "message.reactions", "room_id", "message": {...}}
  {"type": "message.deleted", "room_id", "message_id"}
  {"type": "member.added" | "member.removed" | "member.updated", "room_id", "user_id"}
  {"type": "room.granted" | "room.revoked" | "room.updated" | "room.archived", "room_id"}
  {"type": "read.marker", "room_id", "user_id", "message_id"}
  {"type": "typing", "room_id", "user_id"}
  {"type": "presence", "room_id", "user_id", "state"}
  {"type": "mention", "room_id", "message_id"}
  {"type": "ack", "client_id", "message_id"}   {"type": "sync.done"}   {"type": "pong"}
  {"type": "error", "code", "detail", "client_id"?}   recoverable: the socket stays open

What arrives through the channel layer is ids only; this consumer loads each
message and decrypts it for its own user, after checking they may still view it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from accounts.models import User
from rooms import realtime, selectors, services
from rooms.api.serializers import message_json
from rooms.errors import RateLimitedError
from rooms.models import Message

# A client that floods the socket gets error frames, then is disconnected.
FRAMES_PER_WINDOW = 40
FRAME_WINDOW_SECONDS = 5.0
FLOOD_STRIKES_BEFORE_CLOSE = 3
CLOSE_FLOODING = 4429
SYNC_PAGE = 100
SYNC_MAX_PAGES = 20  # past that the client reloads the room through the API
TYPING_MIN_INTERVAL = 2.0


class ClientError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _int(content: dict[str, Any], name: str) -> int:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ClientError("bad_frame", f"{name} must be an id")
    try:
        return int(value)
    except ValueError:
        raise ClientError("bad_frame", f"{name} must be an id") from None


def _text(content: dict[str, Any]) -> str:
    text = content.get("text")
    if not isinstance(text, str):
        raise ClientError("bad_frame", "text must be a string")
    return text


class RoomStreamMixin:
    """Mixed into the consumer after authentication; expects ``self.scope['user']``."""

    channel_layer: Any
    channel_name: str
    room_ids: set[int]
    send_json: Callable[..., Awaitable[None]]
    close: Callable[..., Awaitable[None]]

    @property
    def stream_user(self) -> User:
        user: User = self.scope["user"]  # type: ignore[attr-defined]
        return user

    # --- lifecycle -------------------------------------------------------------------------
    async def rooms_join(self) -> None:
        self.room_ids = set()
        self._frames: list[float] = []
        self._strikes = 0
        self._last_typing: dict[int, float] = {}
        room_ids = await database_sync_to_async(_viewable_room_ids)(self.stream_user)
        for room_id in room_ids:
            await self._subscribe(room_id)
        await self._presence("online")

    async def rooms_leave(self) -> None:
        if getattr(self, "room_ids", None):
            await self._presence("offline")
        for room_id in list(getattr(self, "room_ids", set())):
            await self._unsubscribe(room_id)

    async def _subscribe(self, room_id: int) -> None:
        await self.channel_layer.group_add(realtime.room_group(room_id), self.channel_name)
        self.room_ids.add(room_id)

    async def _unsubscribe(self, room_id: int) -> None:
        await self.channel_layer.group_discard(realtime.room_group(room_id), self.channel_name)
        self.room_ids.discard(room_id)

    async def _presence(self, state: str) -> None:
        for room_id in self.room_ids:
            await self.channel_layer.group_send(
                realtime.room_group(room_id),
                {
                    "type": "room.event",
                    "event": "presence",
                    "room_id": room_id,
                    "user_id": self.stream_user.pk,
                    "state": state,
                },
            )

    # --- frames from the client ------------------------------------------------------------
    def _flooding(self) -> bool:
        now = time.monotonic()
        self._frames = [t for t in self._frames if now - t < FRAME_WINDOW_SECONDS]
        self._frames.append(now)
        return len(self._frames) > FRAMES_PER_WINDOW

    async def rooms_frame(self, content: dict[str, Any]) -> None:
        """Handle one client frame; mistakes become error frames, never a closed socket."""
        if self._flooding():
            self._strikes += 1
            if self._strikes >= FLOOD_STRIKES_BEFORE_CLOSE:
                await self.close(code=CLOSE_FLOODING)
                return
            await self.send_json({"type": "error", "code": "rate_limited", "detail": "slow down"})
            return
        handler = FRAME_HANDLERS.get(content["type"])
        if handler is None:
            await self.send_json(
                {"type": "error", "code": "unknown_type", "detail": "unknown frame type"}
            )
            return
        try:
            await handler(self, content)
        except ClientError as exc:
            await self._error(content, exc.code, exc.detail)
        except Http404:
            await self._error(content, "not_found", "no such room or message")
        except PermissionDenied as exc:
            await self._error(content, "forbidden", str(exc) or "not allowed")
        except ValidationError as exc:
            await self._error(content, "invalid", "; ".join(exc.messages))
        except RateLimitedError as exc:
            await self._error(content, "rate_limited", str(exc))

    async def _error(self, content: dict[str, Any], code: str, detail: str) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if isinstance(content.get("client_id"), str):
            frame["client_id"] = content["client_id"][:64]
        await self.send_json(frame)

    async def _ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def _resync(self, content: dict[str, Any]) -> None:
        rooms = content.get("rooms")
        if not isinstance(rooms, dict):
            raise ClientError("bad_frame", "rooms must map room ids to last seen message ids")
        for room_key, last_seen in list(rooms.items())[:200]:
            room_id = _int({"id": room_key}, "id")
            after = _int({"after": last_seen}, "after")
            try:
                missed = await _read_in_pool(_missed)(self.stream_user, room_id, after)
            except Http404:
                # A room lost while offline must not stop the resync of the others.
                await self.send_json(
                    {
                        "type": "error",
                        "code": "not_found",
                        "detail": "no such room",
                        "room_id": room_id,
                    }
                )
                continue
            for message in missed:
                await self.send_json(
                    {"type": "message.new", "room_id": room_id, "message": message}
                )
        await self.send_json({"type": "sync.done"})

    async def _post(self, content: dict[str, Any]) -> None:
        room_id = _int(content, "room_id")
        parent = content.get("parent_id")
        parent_id = _int(content, "parent_id") if parent is not None else None
        message_id = await database_sync_to_async(_post)(
            self.stream_user, room_id, _text(content), parent_id
        )
        frame: dict[str, Any] = {"type": "ack", "message_id": message_id}
        if isinstance(content.get("client_id"), str):
            frame["client_id"] = content["client_id"][:64]
        await self.send_json(frame)

    async def _edit(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_edit)(
            self.stream_user, _int(content, "message_id"), _text(content)
        )

    async def _delete(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_delete)(self.stream_user, _int(content, "message_id"))

    async def _read(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_read)(
            self.stream_user, _int(content, "room_id"), _int(content, "message_id")
        )

    async def _typing(self, content: dict[str, Any]) -> None:
        room_id = _int(content, "room_id")
        if room_id not in self.room_ids:
            raise ClientError("not_found", "no such room")
        now = time.monotonic()
        if now - self._last_typing.get(room_id, 0.0) < TYPING_MIN_INTERVAL:
            return
        self._last_typing[room_id] = now
        await self.channel_layer.group_send(
            realtime.room_group(room_id),
            {
                "type": "room.event",
                "event": "typing",
                "room_id": room_id,
                "user_id": self.stream_user.pk,
            },
        )

    async def _presence_frame(self, content: dict[str, Any]) -> None:
        state = content.get("state")
        if state not in ("online", "away"):
            raise ClientError("bad_frame", "state must be online or away")
        await self._presence(str(state))

    # --- events from the channel layer ----------------------------------------------------
    async def room_event(self, event: dict[str, Any]) -> None:
        room_id = int(event["room_id"])
        if room_id not in self.room_ids:
            return  # discarded, or a late event for a room this socket left
        kind = event["event"]
        if kind == "message.new":
            message = await _new_message_for(self.stream_user, int(event["message_id"]))
            if message is not None:
                await self.send_json({"type": kind, "room_id": room_id, "message": message})
        elif kind in ("message.edited", "message.reactions"):
            message = await database_sync_to_async(_message_for)(
                self.stream_user, int(event["message_id"])
            )
            if message is not None:
                await self.send_json({"type": kind, "room_id": room_id, "message": message})
        elif kind == "message.deleted":
            await self.send_json(
                {"type": kind, "room_id": room_id, "message_id": event["message_id"]}
            )
        elif kind == "typing":
            if event["user_id"] != self.stream_user.pk:
                await self.send_json(
                    {"type": "typing", "room_id": room_id, "user_id": event["user_id"]}
                )
        elif kind in (
            "presence",
            "read.marker",
            "member.added",
            "member.removed",
            "member.updated",
        ):
            frame = {k: v for k, v in event.items() if k not in ("type", "event")}
            await self.send_json({"type": kind, **frame})
        elif kind in ("room.updated", "room.archived"):
            await self.send_json({"type": kind, "room_id": room_id})

    async def room_revoked(self, event: dict[str, Any]) -> None:
        """Removed from a room: stop delivery at once, then tell the client."""
        room_id = int(event["room_id"])
        await self._unsubscribe(room_id)
        await self.send_json({"type": "room.revoked", "room_id": room_id})

    async def room_granted(self, event: dict[str, Any]) -> None:
        room_id = int(event["room_id"])
        if await database_sync_to_async(_can_view)(self.stream_user, room_id):
            await self._subscribe(room_id)
            await self.send_json({"type": "room.granted", "room_id": room_id})

    async def user_mentioned(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "mention", "room_id": event["room_id"], "message_id": event["message_id"]}
        )


FRAME_HANDLERS: dict[str, Callable[[Any, dict[str, Any]], Awaitable[None]]] = {
    "ping": RoomStreamMixin._ping,
    "sync": RoomStreamMixin._resync,
    "message.post": RoomStreamMixin._post,
    "message.edit": RoomStreamMixin._edit,
    "message.delete": RoomStreamMixin._delete,
    "read": RoomStreamMixin._read,
    "typing": RoomStreamMixin._typing,
    "presence": RoomStreamMixin._presence_frame,
}


# --- a new message, fanned out: one load per process, one decryption per reader ----------
@dataclass(frozen=True)
class _SharedMessage:
    message: Message
    viewer_ids: frozenset[int]
    reactions: dict[str, list[int]]


# Every member's socket gets ``message.new`` at the same moment. The sockets of one process
# share the in-flight load of the row and of who may view its room (so the check is never
# older than the event); each reader is then checked against it and decrypts with their own
# key. Only ``message.new``: an edit's event must never share a load begun before it.
_loading: dict[tuple[asyncio.AbstractEventLoop, int], asyncio.Future[_SharedMessage | None]] = {}


async def _new_message_for(user: User, message_id: int) -> dict[str, Any] | None:
    key = (asyncio.get_running_loop(), message_id)
    pending = _loading.get(key)
    if pending is None:
        pending = asyncio.ensure_future(_read_in_pool(_message_shared)(message_id))
        _loading[key] = pending
        pending.add_done_callback(lambda _: _loading.pop(key, None))
    shared = await asyncio.shield(pending)  # a socket closing must not cancel the others' load
    if shared is None or user.pk not in shared.viewer_ids:
        return None
    frame: dict[str, Any] = await _read_in_pool(_message_json_for)(user, shared)
    return frame


# --- synchronous work, run in a thread (database and decryption) -------------------------
# Writes go through ``database_sync_to_async``: one thread per process, in order. Reads
# for delivery fan out over the thread pool instead, so a burst of recipients does not
# queue behind posts (each pool thread keeps its own database connection).
def _read_in_pool(func: Any) -> Any:
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def _message_shared(message_id: int) -> _SharedMessage | None:
    message = (
        Message.objects.filter(pk=message_id, deleted_at__isnull=True)
        .select_related("room", "sender")
        .first()
    )
    if message is None:
        return None
    return _SharedMessage(
        message=message,
        viewer_ids=selectors.room_viewer_ids(room=message.room),
        reactions=selectors.message_reactions(message=message),
    )


def _message_json_for(user: User, shared: _SharedMessage) -> dict[str, Any]:
    return message_json(
        selectors.message_view(reader=user, message=shared.message, reactions=shared.reactions)
    )


def _viewable_room_ids(user: User) -> list[int]:
    return list(selectors.rooms_for_user(user=user).values_list("pk", flat=True))


def _can_view(user: User, room_id: int) -> bool:
    return selectors.rooms_for_user(user=user).filter(pk=room_id).exists()


def _missed(user: User, room_id: int, after: int) -> list[dict[str, Any]]:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    missed: list[dict[str, Any]] = []
    for _ in range(SYNC_MAX_PAGES):
        page = selectors.message_page(reader=user, room=room, after=after, limit=SYNC_PAGE)
        if not page:
            return missed
        page.reverse()  # oldest first, as they happened
        missed.extend(message_json(m) for m in page)
        after = page[-1].id
        if len(page) < SYNC_PAGE:
            return missed
    return missed


def _message_for(user: User, message_id: int) -> dict[str, Any] | None:
    try:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    except Http404:
        return None
    return message_json(selectors.message_view(reader=user, message=message))


def _post(user: User, room_id: int, text: str, parent_id: int | None) -> int:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    return services.message_post(sender=user, room=room, text=text, parent_id=parent_id).pk


def _edit(user: User, message_id: int, text: str) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_edit(actor=user, message=message, text=text)


def _delete(user: User, message_id: int) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_delete(actor=user, message=message)


def _read(user: User, room_id: int, message_id: int) -> None:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    services.read_marker_set(actor=user, room=room, message_id=message_id)
