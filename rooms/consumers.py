"""The one WebSocket per browser tab, and the invariant that decides whether it may live.

A socket acts for one session row (``accounts.models.UserSession``, a stable identity
that survives the session key's rotation). Its right to live is never remembered from
connect time: ``accounts.session_policy`` re-derives it from the database

* at the handshake (refused: accepted, then closed with 4401, so a browser can tell
  "signed out" from "network down");
* before every frame from the client (at most every ``SAFECHAT_SOCKET_VERDICT_SECONDS``
  per socket, and at once past the session's deadline);
* at least every ``SAFECHAT_SOCKET_RECHECK_SECONDS``, by the event loop's socket watch,
  which reads every open socket's session in one query (``rooms.socket_watch``);
* on the socket's own timer, at its session's next deadline (and
  ``SAFECHAT_SESSION_WARNING_SECONDS`` before it, to send ``session.expiring``: the
  portal lets the person stay, WCAG 2.2.1);
* at once when an ``access.changed`` hint arrives on ``user.<id>`` (``safechat.events``).

A refusal closes the socket with 4410 (after a ``session.ended`` frame saying why); a
session found past its idle or absolute limit is ended and audited. The user object
the socket acts as is the one read with the last verdict, never the connect-time one.
Every way a socket ends (client close, server close, refusal, an exception) runs the
same clean-up: groups left, presence cleared, timer stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import DatabaseError

from accounts import realtime as accounts_realtime
from accounts.models import User
from accounts.services.sessions import session_expire, session_touch
from accounts.session_policy import (
    ABSOLUTE,
    IDLE,
    UNAVAILABLE,
    SessionVerdict,
    session_row_for,
    session_verdict,
    session_verdict_of,
    session_verdicts,
    touch_interval,
)
from rooms.socket import RoomSocketMixin, in_pool
from rooms.socket.protocol import ClientGone, error_frame
from rooms.socket_watch import socket_watch
from safechat import json_input, metrics
from safechat.events import Event, Frame, user_group
from safechat.json_input import DuplicateName
from safechat.request_context import (
    CHANNEL_WEBSOCKET,
    ActingContext,
    acting,
    clean_user_agent,
    client_ip,
    current_acting,
    new_request_id,
)

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = accounts_realtime.CLOSE_UNAUTHENTICATED
CLOSE_SESSION_ENDED = accounts_realtime.CLOSE_SESSION_ENDED
CLOSE_TRY_AGAIN = accounts_realtime.CLOSE_TRY_AGAIN
CLOSE_SERVER_ERROR = 1011  # RFC 6455: an unexpected condition on the server

# Frames only a person's action sends: they move the session's idle clock. The portal
# sends pings, read markers, catch-up and presence queries on its own (a read marker
# follows every message shown), so those do not: an unattended tab in a busy room
# still times out.
ACTIVITY_FRAMES = frozenset(
    {
        Frame.MESSAGE_POST,
        Frame.MESSAGE_EDIT,
        Frame.MESSAGE_DELETE,
        Frame.TYPING,
        Frame.SESSION_EXTEND,
    }
)


class ChatConsumer(RoomSocketMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    user: User
    session_id: int | None = None
    _verdict: SessionVerdict | None = None
    _verdict_at: float = 0.0  # monotonic
    _touched_at: float = 0.0  # epoch seconds of the last idle-clock write
    _warned_deadline: float = 0.0
    _groups_refreshed: float = 0.0  # monotonic
    _watch_task: asyncio.Task[None] | None = None
    _torn_down: bool = False
    _accepted: bool = False
    _counted: bool = False  # in safechat_open_sockets
    _touches: set[asyncio.Task[None]]
    _client_send: Any  # the ASGI server's send (``_send_to_client`` wraps it)

    # --- life: whatever ends the consumer, the same clean-up runs ---------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels' AsyncConsumer.__call__, with a layer receive that survives the layer
        # failing (Redis down): the socket is then closed with 1013, never dropped.
        self.scope = scope
        # Every frame is served under the handshake's IP and user agent (set in this task,
        # so it follows into the writer threads); receive() gives each frame its own id.
        current_acting.set(replace(socket_context(scope), request_id=new_request_id()))
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = self._layer_receive
        self._client_send = send
        self.base_send = self._send_to_client
        try:
            await await_many_dispatch([receive, self._layer_receive], self.dispatch)
        except StopConsumer:
            pass
        except ClientGone:
            # Normal: a tab closed or a network lost while a frame was on its way.
            logger.info("socket ended: the client went away while a frame was being sent")
        except DatabaseError:
            # The database could not be asked: nothing can be decided, try again later.
            logger.exception("socket closed: the database failed under it")
            await self._close_accepted(CLOSE_TRY_AGAIN)
        except Exception:
            logger.exception("socket failed; closing it with %s", CLOSE_SERVER_ERROR)
            await self._close_accepted(CLOSE_SERVER_ERROR)
        finally:
            await asyncio.shield(self._teardown())

    async def _send_to_client(self, message: dict[str, Any]) -> None:
        """The ASGI server's ``send``; a closed connection becomes ``ClientGone``. (ASGI
        has the server raise an ``OSError`` subclass when sending on a closed
        connection, uvicorn's ``ClientDisconnected``: only this call's, so an
        ``OSError`` from the database, the layer or the key provider stays an error.)"""
        try:
            await self._client_send(message)
        except OSError as exc:
            raise ClientGone from exc

    async def _close_accepted(self, code: int) -> None:
        """Close with ``code`` and a close frame, accepting first if the handshake is still
        open (a close before accepting reaches the browser as HTTP 403, not as a code)."""
        with contextlib.suppress(Exception):
            if not self._accepted:
                await self.accept()
            await self.close(code=code)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol=subprotocol, headers=headers)
        self._accepted = True
        if not self._counted:
            self._counted = True
            metrics.OPEN_SOCKETS.inc()

    async def _layer_receive(self) -> dict[str, Any]:
        try:
            message: dict[str, Any] = await self.channel_layer.receive(self.channel_name)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.channel_layer_failed("receive")
            logger.warning("the channel layer failed under a socket", exc_info=True)
            await asyncio.sleep(0.5)  # a failing layer is not polled in a tight loop
            return {"type": "layer.unavailable"}
        return message

    async def layer_unavailable(self, event: dict[str, Any]) -> None:
        """Nothing can reach this socket while the layer is down: the client reconnects
        later (1013) and resyncs from the database."""
        if self.session_id is not None and not self._torn_down:
            await self.close(code=CLOSE_TRY_AGAIN)

    async def connect(self) -> None:
        row = await in_pool(session_row_for)(
            user=self.scope.get("user"), session=self.scope.get("session")
        )
        verdict = session_verdict_of(row, require_factor=True)
        if not verdict.allowed or row is None:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.session_id = row.pk
        self._touches = set()
        self._verdict_set(verdict)
        self._touched_at = verdict.row.last_seen_at.timestamp() if verdict.row else 0.0
        try:
            await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
            await self.accept()
            await self.rooms_join()
        except ClientGone:
            raise  # the client left during the handshake: not the layer's fault
        except Exception:  # the channel layer (Redis) is down: nothing could reach us
            metrics.channel_layer_failed("join")
            logger.warning("socket refused: the channel layer is unavailable", exc_info=True)
            await self._close_accepted(CLOSE_TRY_AGAIN)
            return
        self._groups_refreshed = time.monotonic()
        socket_watch(_read_verdicts).add(self)
        self._watch_task = asyncio.create_task(self._watch())

    async def disconnect(self, code: int) -> None:
        await self._teardown()

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Every server-side close (refusal, flooding, failure) cleans up first."""
        await self._teardown()
        await super().close(code=code, reason=reason)

    async def _teardown(self) -> None:
        """Leave every group, clear presence, stop the timer: once, whatever failed before."""
        if self._counted:
            self._counted = False
            metrics.OPEN_SOCKETS.dec()
        if self._torn_down:
            return
        self._torn_down = True
        task, self._watch_task = self._watch_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self.session_id is None:
            return
        socket_watch(_read_verdicts).discard(self)
        try:
            await self.rooms_leave()
        except Exception:
            logger.warning("socket clean-up: leaving rooms failed", exc_info=True)
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)

    async def _end(self, reason: str | None) -> None:
        """Close a socket whose session the policy refused, with 4410 and the reason
        (1013, to reconnect later, when the database could not be asked)."""
        if self._torn_down:
            return
        if reason == UNAVAILABLE:
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        if reason in (IDLE, ABSOLUTE) and self.session_id is not None:
            await database_sync_to_async(session_expire)(session_id=self.session_id, reason=reason)
        with contextlib.suppress(Exception):
            await self.send_json({"type": Event.SESSION_ENDED, "reason": reason})
        await self.close(code=CLOSE_SESSION_ENDED)

    # --- the verdict ---------------------------------------------------------------------
    def _verdict_set(self, verdict: SessionVerdict) -> None:
        self._verdict = verdict
        self._verdict_at = time.monotonic()
        if verdict.allowed:
            self.user = verdict.user

    async def _recheck(self) -> SessionVerdict:
        if self.session_id is None:
            raise RuntimeError("no session to re-check")
        verdict: SessionVerdict = await in_pool(session_verdict)(
            session_id=self.session_id, user_id=self.user.pk, require_factor=True
        )
        self._verdict_set(verdict)
        return verdict

    async def _access_holds(self) -> bool:
        """Whether the session may act now: the cached verdict while fresh and inside its
        deadline, else a new one from the database. Ends the socket if not."""
        verdict = self._verdict
        fresh = time.monotonic() - self._verdict_at < settings.SAFECHAT_SOCKET_VERDICT_SECONDS
        if verdict is None or not fresh or time.time() >= verdict.deadline:
            verdict = await self._recheck()
        if not verdict.allowed:
            await self._end(verdict.reason)
            return False
        return True

    async def _activity(self, *, force: bool = False) -> None:
        """The person did something: move the session's idle clock (written at most once
        per ``touch_interval()`` unless ``force``)."""
        now = time.time()
        if not force and now - self._touched_at < touch_interval():
            return
        self._touched_at = now
        if self.session_id is None:
            return
        if force:
            await self._touch(now)
            return
        # Off the frame's path: the post or edit that is the activity does not wait for it.
        task = asyncio.create_task(self._touch(now))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _touch(self, now: float) -> None:
        try:
            await in_pool(session_touch)(session_id=self.session_id, now=now)
        except Exception:
            logger.warning("the idle clock could not be moved", exc_info=True)
            return
        self._verdict_at = 0.0  # the deadlines moved: read them again next time

    def verdict_noted(self, verdict: SessionVerdict) -> bool:
        """The socket watch's verdict, taken at once when it allows and nothing else is
        due (no await: a thousand sockets take theirs without a task each)."""
        if self._torn_down or not verdict.allowed:
            return self._torn_down
        refresh = float(settings.SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS)
        if time.monotonic() - self._groups_refreshed >= refresh:
            return False
        self._verdict_set(verdict)
        return True

    async def verdict_arrived(self, verdict: SessionVerdict) -> None:
        """A verdict on this socket's session, read by the loop's socket watch."""
        if self._torn_down:
            return
        self._verdict_set(verdict)
        if not verdict.allowed:
            # The watch's task runs for every socket of the loop: what this socket's
            # session end writes is recorded with this socket's own context.
            with acting(replace(socket_context(self.scope), request_id=new_request_id())):
                await self._end(verdict.reason)
            return
        refresh = float(settings.SAFECHAT_SOCKET_GROUP_REFRESH_SECONDS)
        if time.monotonic() - self._groups_refreshed >= refresh:
            await self._groups_refresh()

    async def _watch(self) -> None:
        """This socket's own timer: a re-check at the warning time and at the deadline.
        (The periodic re-check and the group refresh come with the loop's socket watch.)"""
        try:
            while not self._torn_down:
                await asyncio.sleep(self._seconds_to_next_wake())
                verdict = await self._recheck()
                if not verdict.allowed:
                    await self._end(verdict.reason)
                    return
                await self._warn_if_expiring(verdict)
        except asyncio.CancelledError:
            raise
        except ClientGone:
            logger.info("socket ended: the client went away before a warning reached it")
        except Exception:
            # The database or layer failed under the timer: fail closed, with a close frame.
            logger.exception("socket re-check failed; closing it")
            await self._close_accepted(CLOSE_TRY_AGAIN)

    def _seconds_to_next_wake(self) -> float:
        now = time.time()
        wake = now + 3600.0  # at the latest; the socket watch re-checks far more often
        verdict = self._verdict
        if verdict is not None and verdict.allowed:
            warn_at = verdict.deadline - float(settings.SAFECHAT_SESSION_WARNING_SECONDS)
            if warn_at > now:
                wake = min(wake, warn_at)
            elif verdict.deadline != self._warned_deadline:
                wake = now  # inside the warning window and not yet warned: warn now
            else:
                wake = min(wake, verdict.deadline)
        return max(0.01, wake - now)

    async def _warn_if_expiring(self, verdict: SessionVerdict) -> None:
        seconds_left = verdict.deadline - time.time()
        warning = float(settings.SAFECHAT_SESSION_WARNING_SECONDS)
        if seconds_left > warning or verdict.deadline == self._warned_deadline:
            return
        self._warned_deadline = verdict.deadline
        reason = IDLE if verdict.idle_deadline <= verdict.absolute_deadline else ABSOLUTE
        await self.send_json(
            {
                "type": Event.SESSION_EXPIRING,
                "reason": reason,
                "seconds": max(0, int(seconds_left)),
                "extendable": reason == IDLE,
            }
        )

    async def _groups_refresh(self) -> None:
        """Join every group again: a group membership expires in the layer after its
        ``group_expiry``, and joining again restarts that clock."""
        self._groups_refreshed = time.monotonic()
        await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        await self.rooms_refresh()

    # --- events on user.<id> -------------------------------------------------------------
    async def user_event(self, event: dict[str, Any]) -> None:
        """An event for this socket's person (``safechat.events``, audience ``user``)."""
        if event["event"] == Event.ACCESS_CHANGED:
            await self._access_changed()
        else:
            await self.rooms_user_event(event)

    async def _access_changed(self) -> None:
        """Something this socket's right depends on changed: decide again, now."""
        if self.session_id is None or self._torn_down:
            return
        verdict = await self._recheck()
        if not verdict.allowed:
            await self._end(verdict.reason)

    # --- frames from the client ------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session_id is None or self._torn_down:
            return
        with acting(replace(socket_context(self.scope), request_id=new_request_id())):
            await self._receive(text_data)

    async def _receive(self, text_data: str | None) -> None:
        if not await self._access_holds():
            return
        # A malformed frame is a recoverable client mistake: answer, keep the socket.
        if text_data is None:
            await self.send_json(error_frame(None, "bad_frame", "text only"))
            return
        try:
            # Each name once in an object, as in an API body (safechat.json_input).
            content = json_input.loads(text_data)
        except DuplicateName as duplicate:
            await self.send_json(error_frame(None, "bad_frame", str(duplicate)))
            return
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            await self.send_json(error_frame(None, "bad_frame", "not JSON"))
            return
        # A lone surrogate (a "\\ud800" escape) anywhere is not text: refused, as an API
        # body is (safechat.json_input.lone_surrogate), before any member is read.
        found = json_input.lone_surrogate(content)
        if found is not None:
            path, code_point, in_name = found
            where = "/".join(path) or "the frame"
            what = "a member's name in" if in_name else ""
            detail = f"{what} {where} holds a lone surrogate character, {code_point}: not text"
            answered = content if isinstance(content, dict) else None
            await self.send_json(error_frame(answered, "invalid", detail.strip()))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            answered = content if isinstance(content, dict) else None
            await self.send_json(error_frame(answered, "bad_frame", "a frame is an object"))
            return
        if content["type"] == Frame.SESSION_EXTEND:
            if not await self.rooms_flood_check(content):
                return
            await self._activity(force=True)
            self._warned_deadline = 0.0
            await self.send_json({"type": Event.SESSION_EXTENDED})
            return
        if content["type"] in ACTIVITY_FRAMES:
            await self._activity()
        await self.rooms_frame(content)


def socket_context(scope: Any) -> ActingContext:
    """The acting context of a socket: its handshake's client address and user agent."""
    client = scope.get("client") or (None, None)
    agent = b""
    for name, value in scope.get("headers") or ():
        if name == b"user-agent":
            agent = value
    return ActingContext(
        channel=CHANNEL_WEBSOCKET,
        ip=client_ip(client[0]),
        user_agent=clean_user_agent(agent.decode("latin-1")),
    )


async def _read_verdicts(session_ids: list[int]) -> dict[int, SessionVerdict]:
    verdicts: dict[int, SessionVerdict] = await in_pool(session_verdicts)(
        session_ids=session_ids, require_factor=True
    )
    return verdicts
