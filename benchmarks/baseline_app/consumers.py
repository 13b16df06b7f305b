"""Tutorial-style chat consumers: join the room's group, broadcast what arrives."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from benchmarks.baseline_app.models import PlainMessage


class PlainChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """No authentication checks, no persistence, no encryption."""

    group_prefix = "plain"

    async def connect(self) -> None:
        self.room = str(self.scope["url_route"]["kwargs"]["room"])
        self.group = f"{self.group_prefix}.{self.room}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text = str(json.loads(text_data or "{}").get("text", ""))
        await self.channel_layer.group_send(self.group, await self.chat_event(text))

    async def chat_event(self, text: str) -> dict[str, Any]:
        return {"type": "chat.message", "text": text}

    async def chat_message(self, event: dict[str, Any]) -> None:
        frame = {"type": "message", "id": event.get("id"), "text": event["text"]}
        await self.send(text_data=json.dumps(frame))


class PersistedChatConsumer(PlainChatConsumer):
    """The same chat, storing each message as a plaintext row before broadcasting it."""

    group_prefix = "persisted"

    async def chat_event(self, text: str) -> dict[str, Any]:
        row = await database_sync_to_async(PlainMessage.objects.create)(room=self.room, text=text)
        return {"type": "chat.message", "id": row.pk, "text": text}
