"""The one wire format of a message: the API's schema documents exactly what is sent."""

from __future__ import annotations

from typing import get_type_hints

import pytest

from rooms.api.serializers import MessageOutput
from rooms.selectors import message_view
from rooms.services import message_post
from rooms.wire import WireMessage, message_json, message_rendered
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def test_the_api_schema_names_every_field_of_the_wire_format_and_no_other() -> None:
    assert list(MessageOutput().fields) == list(get_type_hints(WireMessage))


def test_a_message_on_the_wire_has_exactly_the_fields_of_the_wire_format() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    view = message_view(reader=owner, message=message_post(sender=owner, room=room, text="*hi*"))

    sent = message_json(view)

    assert list(sent) == list(get_type_hints(WireMessage))
    assert sent["html"] == message_rendered(view).html == "<p><em>hi</em></p>\n"
