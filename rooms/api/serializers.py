"""Output shapes shared by the room API views.

A message's JSON is built by ``rooms.wire.message_json`` (for the socket too);
``MessageOutput`` documents it in the API's schema, derived from ``rooms.wire.WireMessage``
field for field (a test keeps the JSON and the serializer's output identical).
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rooms.models import Membership, Room
from rooms.selectors import RoomLabel, label_json
from rooms.wire import Doc, WireMessage


class RoomLabelOutput(serializers.Serializer[RoomLabel]):
    """``rooms.selectors.RoomLabel`` as ``label_json`` writes it."""

    text = serializers.CharField(
        help_text="What the room is called for you: a channel's name; a direct "
        "conversation's other participants' display names (the username of someone with "
        "no name), comma-separated, never your own. Text to show isolated (bidi), never markup"
    )
    qualifier = serializers.CharField(
        allow_blank=True,
        help_text="Empty unless another of your rooms has a label that looks the same "
        "(case, compatibility forms and confusable letters aside, Unicode TS #39): then "
        "show it beside `text` to tell them apart: `#<id>` for a channel, the other "
        "participants' `@username`s for a direct conversation (and ` · #<id>` when two "
        "conversations have the very same people)",
    )
    usernames = serializers.ListField(
        child=serializers.CharField(),
        help_text="A direct conversation's other participants' usernames, in the order of "
        "`text` (empty for a channel): show them with the display names (a tooltip, a "
        "second line), so that a display name never stands alone",
    )


class RoomOutput(serializers.ModelSerializer[Room]):
    """A room as the caller sees it. Needs ``context["labels"]``, the caller's
    ``rooms.selectors.room_labels``."""

    unread = serializers.IntegerField(read_only=True, required=False)
    # DRF's metaclass takes declared fields off the class, so this does not stand for
    # ``Field.label`` (the serializer's own caption), which the stubs see.
    label = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="What the room is called for you (per viewer; `name` is the stored name, "
        "which for a direct conversation lists every participant's username, yours too)"
    )
    archived = serializers.SerializerMethodField()
    visibility = serializers.ChoiceField(
        choices=Room.Visibility.choices,
        read_only=True,
        help_text="private: invitation only; listed: anyone in the organisation whom "
        "information barriers allow may find and join it (a direct conversation is "
        "never listed)",
    )
    mute = serializers.SerializerMethodField(
        help_text="How the room notifies you: off; messages (unread shown muted, only "
        "mentions notify); all (mentions do not notify either)"
    )

    class Meta:
        model = Room
        fields = [
            "id",
            "kind",
            "name",
            "label",
            "topic",
            "history_visible",
            "visibility",
            "archived",
            "created_at",
            "unread",
            "mute",
        ]

    def get_archived(self, room: Room) -> bool:
        return room.is_archived

    @extend_schema_field(RoomLabelOutput)
    def get_label(self, room: Room) -> dict[str, object]:
        labels: dict[int, RoomLabel] = self.context["labels"]
        return label_json(labels.get(room.pk) or RoomLabel(text=room.name))

    @extend_schema_field(serializers.ChoiceField(choices=Membership.Mute.choices))
    def get_mute(self, room: Room) -> str:
        # Annotated by ``rooms.selectors.room_list_for_user``.
        return str(getattr(room, "mute", None) or Membership.Mute.OFF)


class JoinableRoomOutput(serializers.ModelSerializer[Room]):
    member_count = serializers.IntegerField(read_only=True, help_text="members now")

    class Meta:
        model = Room
        fields = ["id", "name", "topic", "history_visible", "member_count", "created_at"]


class MemberOutput(serializers.ModelSerializer[Membership]):
    user_id = serializers.IntegerField(source="user.pk")
    username = serializers.CharField(source="user.username")
    name = serializers.CharField(source="user.display_name", help_text="display name")

    class Meta:
        model = Membership
        fields = ["user_id", "username", "name", "role", "joined_at", "last_read_message_id"]


def _wire_field(hint: Any, doc: Doc) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field documenting one ``WireMessage`` field's type hint."""
    options: dict[str, Any] = {"help_text": doc.text} if doc.text else {}
    members = get_args(hint)
    if get_origin(hint) in (Union, UnionType) and type(None) in members:
        (hint,) = [m for m in members if m is not type(None)]
        options["allow_null"] = True
    origin, args = get_origin(hint), get_args(hint)
    if is_typeddict(hint):
        return _wire_serializer(hint, name=f"Message{hint.__name__.removeprefix('Wire')}")(
            read_only=True, **options
        )
    if origin is Literal:
        return serializers.ChoiceField(choices=list(args), **options)
    if origin is dict:
        return serializers.DictField(child=_wire_field(args[1], Doc()), **options)
    if origin is list:
        return serializers.ListField(child=_wire_field(args[0], Doc()), **options)
    if hint is str and doc.date_time:
        return serializers.DateTimeField(**options)
    if hint is int:
        return serializers.IntegerField(**options)
    if hint is str:
        return serializers.CharField(**options)
    if hint is bool:
        return serializers.BooleanField(**options)
    raise TypeError(f"no schema for the wire type {hint!r}")


def _wire_serializer(shape: type, *, name: str) -> type[serializers.Serializer[Any]]:
    """A read-only serializer named ``name`` with one field per key of the TypedDict
    ``shape``, in order, typed and described by its annotations (``rooms.wire.Doc``)."""
    attrs: dict[str, Any] = {"__module__": __name__, "__doc__": None}
    for key, hinted in get_type_hints(shape, include_extras=True).items():
        docs = [d for d in getattr(hinted, "__metadata__", ()) if isinstance(d, Doc)]
        hint = get_args(hinted)[0] if docs else hinted
        attrs[key] = _wire_field(hint, docs[0] if docs else Doc())
    return type(name, (serializers.Serializer,), attrs)


# The API schema of ``rooms.wire.WireMessage``, derived from it: a field added there is
# documented here with nothing to add (``message_json`` builds the JSON itself).
MessageOutput = _wire_serializer(WireMessage, name="MessageOutput")
