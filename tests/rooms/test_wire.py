"""The one wire format of a message: the API's schema documents exactly what is sent."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict, get_type_hints

import pytest
from rest_framework import serializers

from rooms.api.serializers import MessageOutput, _wire_serializer
from rooms.selectors import message_view
from rooms.services import message_post
from rooms.wire import Doc, WireMessage, message_json, message_rendered
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


class PinnedShape(TypedDict):
    pinned: Annotated[bool, Doc("pinned by a moderator")]
    pinned_at: Annotated[str | None, Doc(date_time=True)]
    mood: Literal["calm", "urgent"]
    readers: dict[str, list[int]]


class RatioShape(TypedDict):
    ratio: float


def test_the_api_schema_names_every_field_of_the_wire_format_and_no_other() -> None:
    assert list(MessageOutput().fields) == list(get_type_hints(WireMessage))


def test_a_message_on_the_wire_has_exactly_the_fields_of_the_wire_format() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    view = message_view(reader=owner, message=message_post(sender=owner, room=room, text="*hi*"))

    sent = message_json(view)

    assert list(sent) == list(get_type_hints(WireMessage))
    assert sent["html"] == message_rendered(view).html == "<p><em>hi</em></p>\n"


def test_the_api_schema_follows_a_field_added_to_the_wire_format() -> None:
    # given a wire shape with one field of each kind the schema knows (PinnedShape)
    # when its serializer is derived
    fields = _wire_serializer(PinnedShape, name="ShapeOutput")().fields

    # then each field is documented with its type, nullability and help text
    assert list(fields) == ["pinned", "pinned_at", "mood", "readers"]
    assert isinstance(fields["pinned"], serializers.BooleanField)
    assert fields["pinned"].help_text == "pinned by a moderator"
    assert isinstance(fields["pinned_at"], serializers.DateTimeField)
    assert fields["pinned_at"].allow_null
    assert isinstance(fields["mood"], serializers.ChoiceField)
    assert list(fields["mood"].choices) == ["calm", "urgent"]
    assert isinstance(fields["readers"], serializers.DictField)
    assert isinstance(fields["readers"].child, serializers.ListField)


def test_a_wire_type_the_schema_cannot_describe_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="no schema for the wire type"):
        _wire_serializer(RatioShape, name="ShapeOutput")
