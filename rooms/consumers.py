"""The one WebSocket per browser tab.

Thin by design: authenticate (user and verified second factor), then hand every
frame to services. Nothing is accepted before both checks pass.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts import realtime as accounts_realtime
from accounts.otp import session_key_hash, verified_device_for
from rooms.stream import RoomStreamMixin

# Close codes in the application range (4000-4999), documented for clients
# (docs/accounts.md): 4401 refused at the handshake, 4410 session ended.
CLOSE_UNAUTHENTICATED = accounts_realtime.CLOSE_UNAUTHENTICATED
CLOSE_SESSION_ENDED = accounts_realtime.CLOSE_SESSION_ENDED


class ChatConsumer(RoomStreamMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    account_groups: list[str]

    async def connect(self) -> None:
        self.account_groups = []
        user = self.scope.get("user")
        session = self.scope.get("session")
        device = await database_sync_to_async(verified_device_for)(user=user, session=session)
        if device is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.account_groups_join(user_id=user.pk, session_key=session.session_key)
        await self.accept()
        await self.rooms_join()

    async def disconnect(self, code: int) -> None:
        await self.rooms_leave()
        await self.account_groups_leave()

    # --- accounts: the socket lives only as long as its session ------------------
    async def account_groups_join(self, *, user_id: int, session_key: str) -> None:
        """Join ``session.<hash>`` and ``user.<id>`` so that ending either closes this socket."""
        self.account_groups = [
            accounts_realtime.session_group(session_key_hash(session_key)),
            accounts_realtime.user_group(user_id),
        ]
        for group in self.account_groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def account_groups_leave(self) -> None:
        for group in getattr(self, "account_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.account_groups = []

    async def session_ended(self, event: dict[str, Any]) -> None:
        """``session.ended`` from accounts.realtime: sign-out, end, deactivation, factor reset."""
        await self.rooms_leave()
        await self.account_groups_leave()
        await self.close(code=CLOSE_SESSION_ENDED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # A malformed frame is a recoverable client mistake: answer, keep the socket.
        if text_data is None:
            await self.send_json({"type": "error", "code": "bad_frame"})
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "code": "bad_frame"})
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_json({"type": "error", "code": "bad_frame"})
            return
        await self.rooms_frame(content)
