"""Output shapes shared by the room API views.

A message's JSON is built by ``rooms.wire.message_json`` (for the socket too);
``MessageOutput`` documents it in the API's schema, field for field (a test keeps the
two identical).
"""

from __future__ import annotations

from rest_framework import serializers

from rooms.models import Membership, Room
from rooms.wire import RenderedMessage


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


# The schema of ``rooms.wire.WireMessage`` (a comment: a docstring would enter the schema).
class MessageOutput(serializers.Serializer[RenderedMessage]):
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
