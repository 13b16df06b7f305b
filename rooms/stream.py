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
  {"type": "presence.get", "room_id"}                  who in the room is online or away
  {"type": "ping"}                                     also keeps this socket's presence alive

server -> client
  {"type": "message.new" | "message.edited" | "message.reactions", "room_id", "message": {...}}
  {"type": "message.deleted", "room_id", "message_id"}
  {"type": "member.added" | "member.removed" | "member.updated", "room_id", "user_id"}
  {"type": "room.granted" | "room.revoked" | "room.updated" | "room.archived", "room_id"}
  {"type": "read.marker", "room_id", "user_id", "message_id"}
  {"type": "typing", "room_id", "user_id"}
  {"type": "presence", "room_id", "user_id", "state"}      the user's state over all their sockets
  {"type": "presence.snapshot", "room_id", "states": {"<user id>": "online" | "away"}}
  {"type": "mention", "room_id", "message_id"}
  {"type": "ack", "client_id", "message_id"}   {"type": "sync.done"}   {"type": "pong"}
  {"type": "error", "code", "detail", "client_id"?}   recoverable: the socket stays open

What arrives through the channel layer is ids, and for a new message its ciphertext
(``realtime.message_posted``). A socket hears a room only while subscribed to it:
subscribed after the membership check, discarded at once on removal. It opens each
message with its own user's copy of the epoch key, which removal takes away by
starting a new epoch; other events are loaded by id through the selectors.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from accounts.models import User
from rooms import presence, realtime, render_cache, selectors, services
from rooms.api.serializers import message_json
from rooms.errors import RateLimitedError
from rooms.models import Room
from rooms.selectors import TEXT_INTEGRITY_FAILURE, TEXT_OK, MessageView
from rooms.write_threads import in_room_thread
from safechat.crypto import CryptoError
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.services import message_decrypt, message_decrypt_if_cached

logger = logging.getLogger(__name__)

# A client that floods the socket gets error frames, then is disconnected.
FRAMES_PER_WINDOW = 40
FRAME_WINDOW_SECONDS = 5.0
FLOOD_STRIKES_BEFORE_CLOSE = 3
CLOSE_FLOODING = 4429
SYNC_PAGE = 100  # messages per room per sync frame
SYNC_ROOMS_PER_FRAME = 20  # a frame's cost is bounded: at most 20 rooms x 100 messages
# Catch-up is paced, not refused: a socket is served at most SYNC_BUDGET rooms and
# messages in any SYNC_WINDOW seconds; a sync frame past that waits its turn. A client
# following ``more`` is never closed for it, and one socket cannot take a core with it.
SYNC_BUDGET = 600
SYNC_WINDOW = 5.0
TYPING_MIN_INTERVAL = 2.0
PRESENCE_REFRESH = 10.0  # seconds between heartbeats pushing this socket's expiry forward


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
    """Mixed into the consumer after authentication; acts as ``self.user``, which the
    consumer re-reads with every verdict on the socket's session."""

    channel_layer: Any
    channel_name: str
    room_ids: set[int]
    send_json: Callable[..., Awaitable[None]]
    close: Callable[..., Awaitable[None]]

    user: User  # as read with the socket's last verdict (rooms.consumers), never at connect

    # --- lifecycle -------------------------------------------------------------------------
    async def rooms_join(self) -> None:
        self.room_ids = set()
        self._frames: list[float] = []
        self._strikes = 0
        self._last_typing: dict[int, float] = {}
        self._sync_spent: list[tuple[float, int]] = []  # (when, rooms and messages served)
        self._presence_state: str | None = None
        self._presence_refreshed = 0.0
        room_ids = await in_pool(_viewable_room_ids)(self.user)
        for room_id in room_ids:
            await self._subscribe(room_id)
        await self._presence_record(presence.ONLINE)

    async def rooms_leave(self) -> None:
        if getattr(self, "_presence_state", None) is not None:
            self._presence_state = None
            state = await in_pool(presence.presence_clear)(
                user_id=self.user.pk, socket_id=self.channel_name
            )
            await self._presence(state)
        for room_id in list(getattr(self, "room_ids", set())):
            await self._unsubscribe(room_id)

    async def _presence_record(self, state: str) -> None:
        """Record this socket's state and announce the user's, which other tabs may decide."""
        self._presence_state = state
        self._presence_refreshed = time.monotonic()
        overall = await in_pool(presence.presence_set)(
            user_id=self.user.pk, socket_id=self.channel_name, state=state
        )
        await self._presence(overall)

    async def rooms_refresh(self) -> None:
        """Join every subscribed room's group again (restarts the layer's group expiry)."""
        for room_id in list(self.room_ids):
            await self.channel_layer.group_add(realtime.room_group(room_id), self.channel_name)

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
                    "user_id": self.user.pk,
                    "state": state,
                },
            )

    # --- frames from the client ------------------------------------------------------------
    def _flooding(self, weight: int) -> bool:
        now = time.monotonic()
        self._frames = [t for t in self._frames if now - t < FRAME_WINDOW_SECONDS]
        self._frames.extend([now] * weight)
        return len(self._frames) > FRAMES_PER_WINDOW

    async def rooms_flood_check(self, weight: int = 1) -> bool:
        """Count a frame (``weight`` frames' worth) against the socket's flood limit; False
        (after an error frame, or closing with 4429 at the third strike) when over it."""
        if not self._flooding(weight):
            return True
        self._strikes += 1
        if self._strikes >= FLOOD_STRIKES_BEFORE_CLOSE:
            await self.close(code=CLOSE_FLOODING)
            return False
        await self.send_json({"type": "error", "code": "rate_limited", "detail": "slow down"})
        return False

    async def rooms_frame(self, content: dict[str, Any]) -> None:
        """Handle one client frame; mistakes become error frames, never a closed socket."""
        if not await self.rooms_flood_check():
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
        except IntegrityFailure:  # reported (logged, audited once) where it was raised
            await self._error(
                content,
                "integrity_failure",
                "stored data failed its integrity check; the security team is notified",
            )
        except Exception:
            # Whatever else went wrong is ours, not the client's: say so, keep the socket.
            logger.exception("socket frame %s failed", content["type"])
            await self._error(content, "server_error", "the server could not handle this frame")

    async def _error(self, content: dict[str, Any], code: str, detail: str) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
        if isinstance(content.get("client_id"), str):
            frame["client_id"] = content["client_id"][:64]
        await self.send_json(frame)

    async def _ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})
        state = self._presence_state
        if state is not None and time.monotonic() - self._presence_refreshed > PRESENCE_REFRESH:
            self._presence_refreshed = time.monotonic()
            await in_pool(presence.presence_set)(
                user_id=self.user.pk, socket_id=self.channel_name, state=state
            )

    async def _presence_get(self, content: dict[str, Any]) -> None:
        room_id = _int(content, "room_id")
        if room_id not in self.room_ids:
            raise ClientError("not_found", "no such room")
        member_ids = await in_pool(_room_member_ids)(self.user, room_id)
        states = await in_pool(presence.presence_of)(user_ids=member_ids)
        await self.send_json(
            {
                "type": "presence.snapshot",
                "room_id": room_id,
                "states": {str(user_id): state for user_id, state in states.items()},
            }
        )

    async def _resync(self, content: dict[str, Any]) -> None:
        """Send what was missed, bounded per frame: at most SYNC_ROOMS_PER_FRAME rooms and
        SYNC_PAGE messages of each. ``sync.done`` maps each room with more to fetch to the
        cursor to continue from (``more``); the client sends ``sync`` again with those."""
        rooms = content.get("rooms")
        if not isinstance(rooms, dict):
            raise ClientError("bad_frame", "rooms must map room ids to last seen message ids")
        if len(rooms) > SYNC_ROOMS_PER_FRAME:
            raise ClientError("bad_frame", f"at most {SYNC_ROOMS_PER_FRAME} rooms per sync frame")
        cursors = [
            (_int({"id": key}, "id"), _int({"after": last}, "after")) for key, last in rooms.items()
        ]
        more: dict[str, int] = {}  # room id -> the cursor to continue from
        for room_id, after in cursors:
            await self._sync_paced()
            try:
                missed = await in_pool(_missed)(self.user, room_id, after)
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
            self._sync_spent.append((time.monotonic(), 1 + len(missed)))
            for message in missed:
                await self.send_json(
                    {"type": "message.new", "room_id": room_id, "message": message}
                )
            if len(missed) >= SYNC_PAGE:
                more[str(room_id)] = int(missed[-1]["id"])
        await self.send_json({"type": "sync.done", "more": more})

    async def _sync_paced(self) -> None:
        """Wait until this socket's catch-up spent in the last SYNC_WINDOW seconds is
        under SYNC_BUDGET (a room costs one, plus one per message sent)."""
        while True:
            now = time.monotonic()
            self._sync_spent = [(t, c) for t, c in self._sync_spent if now - t < SYNC_WINDOW]
            if sum(c for _, c in self._sync_spent) < SYNC_BUDGET:
                return
            await asyncio.sleep(SYNC_WINDOW - (now - self._sync_spent[0][0]))

    async def _post(self, content: dict[str, Any]) -> None:
        room_id = _int(content, "room_id")
        if room_id not in self.room_ids:  # never visible to this socket, or revoked
            raise ClientError("not_found", "no such room or message")
        parent = content.get("parent_id")
        parent_id = _int(content, "parent_id") if parent is not None else None
        message_id = await in_room_thread(room_id, _post)(
            self.user, room_id, _text(content), parent_id, content.get("client_id")
        )
        frame: dict[str, Any] = {"type": "ack", "message_id": message_id}
        if isinstance(content.get("client_id"), str):
            frame["client_id"] = content["client_id"][:64]
        await self.send_json(frame)

    async def _edit(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_edit)(self.user, _int(content, "message_id"), _text(content))

    async def _delete(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_delete)(self.user, _int(content, "message_id"))

    async def _read(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(_read)(
            self.user, _int(content, "room_id"), _int(content, "message_id")
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
                "user_id": self.user.pk,
            },
        )

    async def _presence_frame(self, content: dict[str, Any]) -> None:
        state = content.get("state")
        if state not in (presence.ONLINE, presence.AWAY):
            raise ClientError("bad_frame", "state must be online or away")
        await self._presence_record(str(state))

    # --- events from the channel layer ----------------------------------------------------
    async def room_event(self, event: dict[str, Any]) -> None:
        room_id = int(event["room_id"])
        if room_id not in self.room_ids:
            return  # discarded, or a late event for a room this socket left
        kind = event["event"]
        if kind == "message.new":
            message = await _new_message_for(self.user, event)
            if message is not None:
                await self.send_json({"type": kind, "room_id": room_id, "message": message})
        elif kind in ("message.edited", "message.reactions"):
            message = await in_pool(_message_for)(self.user, int(event["message_id"]))
            if message is not None:
                await self.send_json({"type": kind, "room_id": room_id, "message": message})
        elif kind == "message.deleted":
            await self.send_json(
                {"type": kind, "room_id": room_id, "message_id": event["message_id"]}
            )
        elif kind == "typing":
            if event["user_id"] != self.user.pk:
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
        if await in_pool(_can_view)(self.user, room_id):
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
    "presence.get": RoomStreamMixin._presence_get,
}


# --- a new message, fanned out: no database read, one decryption per reader -------------


def _sealed_view(
    event: dict[str, Any], text: str | None, html: str | None, status: str = TEXT_OK
) -> MessageView:
    sealed = event["sealed"]
    return MessageView(
        id=int(event["message_id"]),
        room_id=int(event["room_id"]),
        seq=int(sealed["seq"]),
        sender_id=int(sealed["sender_id"]),
        sender=str(sealed["sender"]),
        parent_id=sealed["parent_id"],
        created_at=datetime.fromisoformat(sealed["created_at"]),
        edited_at=None,
        deleted=False,
        text=text,
        html=html,
        reactions={},
        text_status=status,
    )


def _open_sealed(user_id: int, event: dict[str, Any], *, cached_only: bool) -> str | None:
    """The text of ``message.new`` opened with ``user_id``'s key copy; None without one.

    ``cached_only``: only with a key this process already opened for this user, which
    needs no database and so may run on the event loop. Raises IntegrityFailure for a
    ciphertext or key copy that fails its check (reported by the keyring unless
    ``cached_only``).
    """
    sealed = event["sealed"]
    decrypt = message_decrypt_if_cached if cached_only else message_decrypt
    try:
        return decrypt(
            reader_id=user_id,
            room_id=int(event["room_id"]),
            message_uid=uuid.UUID(sealed["uid"]),
            epoch=int(sealed["epoch"]),
            sender_id=int(sealed["sender_id"]),
            ciphertext=bytes(sealed["ciphertext"]),
            revision=int(sealed["revision"]),
        )
    except IntegrityFailure:
        raise
    except CryptoError:  # no copy of this epoch's key (removed, or joined without history)
        return None


async def _new_message_for(user: User, event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        text = _open_sealed(user.pk, event, cached_only=True)
    except IntegrityFailure:
        text = None  # opened again in the pool, where the keyring reports it
    if text is None:
        try:
            text = await in_pool(_open_sealed)(user.pk, event, cached_only=False)
        except IntegrityFailure:  # shown as such, never as text, never silently dropped
            return message_json(_sealed_view(event, None, None, TEXT_INTEGRITY_FAILURE))
        if text is None:
            return None
    html = await render_cache.rendered_once(
        message_id=int(event["message_id"]),
        revision=int(event["sealed"]["revision"]),
        room_id=int(event["room_id"]),
        epoch=int(event["sealed"]["epoch"]),
        text=text,
    )
    return message_json(_sealed_view(event, text, html))


# --- synchronous work, run in a thread (database and decryption) -------------------------
# Posts go to their room's writer thread (rooms/write_threads.py); other writes through
# ``database_sync_to_async``. Reads fan out over the thread pool, so a burst of readers
# does not queue behind writes (each pool thread keeps its own database connection).
def in_pool(func: Any) -> Any:
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def _viewable_room_ids(user: User) -> list[int]:
    return list(selectors.rooms_for_user(user=user).values_list("pk", flat=True))


def _room_member_ids(user: User, room_id: int) -> list[int]:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    return list(selectors.room_members(user=user, room=room).values_list("user_id", flat=True))


def _can_view(user: User, room_id: int) -> bool:
    return selectors.rooms_for_user(user=user).filter(pk=room_id).exists()


def _missed(user: User, room_id: int, after: int) -> list[dict[str, Any]]:
    """Up to SYNC_PAGE messages of the room after ``after``, oldest first."""
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    page = selectors.message_page(reader=user, room=room, after=after, limit=SYNC_PAGE)
    page.reverse()  # oldest first, as they happened
    return [message_json(m) for m in page]


def _message_for(user: User, message_id: int) -> dict[str, Any] | None:
    try:
        message = selectors.message_get_for_user(user=user, message_id=message_id)
    except Http404:
        return None
    return message_json(selectors.message_view(reader=user, message=message))


def _post(user: User, room_id: int, text: str, parent_id: int | None, client_id: str | None) -> int:
    # The socket checked the room when it subscribed (``_post``); the service locks and
    # reloads it, and checks the permission again under that lock. ``client_id`` makes a
    # repeated frame ("send again") return the original message instead of a second one.
    room = Room(pk=room_id)
    return services.message_post(
        sender=user, room=room, text=text, parent_id=parent_id, client_key=client_id
    ).pk


def _edit(user: User, message_id: int, text: str) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_edit(actor=user, message=message, text=text)


def _delete(user: User, message_id: int) -> None:
    message = selectors.message_get_for_user(user=user, message_id=message_id)
    services.message_delete(actor=user, message=message)


def _read(user: User, room_id: int, message_id: int) -> None:
    room = selectors.room_get_for_user(user=user, room_id=room_id)
    services.read_marker_set(actor=user, room=room, message_id=message_id)
