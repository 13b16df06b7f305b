"""Output shapes shared by the room API views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from rooms.models import Membership, Room
from rooms.selectors import MessageView


class RoomOutput(serializers.ModelSerializer[Room]):
    unread = serializers.IntegerField(read_only=True, required=False)
    archived = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id",
            "kind",
            "name",
            "topic",
            "history_visible",
            "archived",
            "created_at",
            "unread",
        ]

    def get_archived(self, room: Room) -> bool:
        return room.is_archived


class MemberOutput(serializers.ModelSerializer[Membership]):
    user_id = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "joined_at", "last_read_message_id"]


class MessageOutput(serializers.Serializer[MessageView]):
    id = serializers.IntegerField()
    room_id = serializers.IntegerField()
    seq = serializers.IntegerField(
        help_text="1, 2, 3... within the room: a number skipped is a message missed"
    )
    sender_id = serializers.IntegerField()
    sender = serializers.CharField()
    parent_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    text = serializers.CharField(
        allow_null=True, help_text="null unless text_status is ok: see text_status"
    )
    text_status = serializers.ChoiceField(
        choices=["ok", "unavailable", "integrity_failure"],
        help_text=(
            "ok: text holds the message; unavailable: this reader holds no key for it "
            "(destroyed by retention, or from before they joined a room that hides "
            "history); integrity_failure: the stored message or its key failed its "
            "authenticity check (tampering or corruption, reported to the security team)"
        ),
    )
    html = serializers.CharField(allow_null=True, help_text="sanitised Markdown rendering")
    reactions = serializers.DictField(child=serializers.ListField(child=serializers.IntegerField()))


def _iso(moment: datetime | None) -> str | None:
    # The same text DRF's DateTimeField gives with USE_TZ (UTC, "Z" suffix).
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def message_json(view: MessageView) -> dict[str, Any]:
    """``MessageOutput`` as a plain dict, built directly: this runs once per recipient
    of every message, where the serializer machinery costs more than everything else.
    A test keeps the two identical.
    """
    return {
        "id": view.id,
        "room_id": view.room_id,
        "seq": view.seq,
        "sender_id": view.sender_id,
        "sender": view.sender,
        "parent_id": view.parent_id,
        "created_at": _iso(view.created_at),
        "edited_at": _iso(view.edited_at),
        "text": view.text,
        "text_status": view.text_status,
        "html": view.html,
        "reactions": {emoji: list(users) for emoji, users in view.reactions.items()},
    }
