"""What the composer is told by the server, and what the server answers it: the one
length rule of a message (the same reason on the API, the socket's service and the page's
limits), a conversation an information barrier separates (readable, with a composer that
says why it cannot send), the new-room form's errors tied to their fields, and the
remove-member confirmation naming the person."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError

from accounts.roles import Role
from audit.models import AuditEvent
from rooms.models import Message, Room
from rooms.services import (
    MAX_MESSAGE_BYTES,
    barrier_create,
    direct_conversation_create,
    group_create,
    group_members_set,
    message_post,
    reaction_toggle,
    room_archive,
)
from safechat.websocket_limits import WEBSOCKET_MAX_FRAME_BYTES
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

LONG = "x" * 70_000  # the reviewer's message: 68.4 KiB


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def chat_config(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script id="chat-config" type="application/json">(.*?)</script>', page, re.S
    )
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


# --- One length rule ------------------------------------------------------------------------
def test_an_over_long_message_is_refused_by_the_service_with_its_size_and_the_limit() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(ValidationError) as refused:
        message_post(sender=owner, room=room, text=LONG)

    assert [error.code for error in refused.value.error_dict["text"]] == ["message_too_long"]
    assert refused.value.messages == [
        "this message is too long (68.4 KiB): a message may be at most 16 KiB of text; "
        "shorten it, or share it as a file"
    ]
    assert not Message.objects.exists()


def test_the_api_answers_the_same_reason_not_a_count_of_characters() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    response = verified_client(owner).post(
        f"/api/v1/rooms/{room.pk}/messages/", {"text": LONG}, content_type="application/json"
    )

    assert response.status_code == 400
    body = response.content.decode()
    assert "too long (68.4 KiB)" in body
    assert "at most 16 KiB" in body
    assert "characters" not in body
    assert not Message.objects.exists()


def test_the_limit_counts_bytes_so_a_message_of_wide_characters_is_measured_alike() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    fits = "\u20ac" * (MAX_MESSAGE_BYTES // 3)  # three bytes each in UTF-8

    message_post(sender=owner, room=room, text=fits)
    with pytest.raises(ValidationError):
        message_post(sender=owner, room=room, text=fits + "\u20ac")

    assert Message.objects.count() == 1


def test_the_chat_page_gives_the_composer_both_limits_and_a_counter() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    page = verified_client(owner).get(f"/rooms/?room={room.pk}").content.decode()

    assert chat_config(page)["limits"] == {
        "message_bytes": MAX_MESSAGE_BYTES,
        "frame_bytes": WEBSOCKET_MAX_FRAME_BYTES,
    }
    assert '<p id="composer-count" class="composer-count" hidden></p>' in page
    assert 'aria-describedby="composer-help composer-count composer-error"' in page


# --- A conversation an information barrier separates -----------------------------------------
def test_a_conversation_a_barrier_separates_shows_a_disabled_composer_with_the_reason() -> None:
    # given a banker and an analyst in a direct conversation, then a barrier between them
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    banker = make_user(username="banker", first_name="Bea", last_name="Banker")
    analyst = make_user(username="analyst")
    direct = direct_conversation_create(actor=banker, participants=[analyst])
    posted = message_post(sender=analyst, room=direct, text="the numbers are in")
    reaction_toggle(actor=banker, message=posted, emoji="\U0001f44d")
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    group_members_set(actor=admin, group=deals, add=[banker])
    group_members_set(actor=admin, group=research, add=[analyst])
    barrier_create(actor=admin, group_a=deals, group_b=research)

    # when the banker opens it
    page = verified_client(banker).get(f"/rooms/?room={direct.pk}").content.decode()

    # then it is readable, and the composer cannot send and says why
    assert "the numbers are in" in page
    assert 'id="composer"' not in page
    assert "Skip to the message box" not in page
    assert re.search(
        r'<textarea id="composer-blocked-input"[^>]* disabled '
        r'aria-describedby="composer-blocked-reason"',
        page,
    )
    assert (
        '<p id="composer-blocked-reason" class="composer-blocked-reason">An information barrier '
        "separates you from someone in this conversation: you can read it, but not write in it, "
        "until a security administrator resolves it.</p>"
    ) in page
    assert chat_config(page)["room"]["can"]["post"] is False
    assert chat_config(page)["room"]["can"]["walled"] is True
    # and its reactions are shown, marked disabled and described by the same reason
    assert re.search(
        r'<button type="button" class="reaction" data-emoji="\U0001f44d" aria-pressed="true"'
        r'[^>]* aria-disabled="true" aria-describedby="composer-blocked-reason">',
        page,
    )


def test_an_archived_rooms_reactions_are_disabled_with_the_reason() -> None:
    # given a room with a reaction, archived
    owner = make_room_admin()
    room = make_room(owner=owner)
    posted = message_post(sender=owner, room=room, text="closing the desk")
    reaction_toggle(actor=owner, message=posted, emoji="\U0001f44d")
    room_archive(actor=owner, room=room)

    # when the owner opens it
    page = verified_client(owner).get(f"/rooms/?room={room.pk}").content.decode()

    # then the chip is disabled and points at the shown reason
    assert 'aria-disabled="true" aria-describedby="composer-readonly-reason"' in page
    assert '<p id="composer-readonly-reason" class="composer-readonly muted">' in page


def test_a_room_without_a_barrier_has_the_live_composer() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    page = verified_client(owner).get(f"/rooms/?room={room.pk}").content.decode()

    assert 'id="composer"' in page
    assert "composer-blocked" not in page


# --- The new-room form and the remove confirmation --------------------------------------------
@pytest.mark.parametrize("name", ["Tr\u00adading", "\u200b\u200b", "x" * 121, ""])
def test_a_refused_room_name_marks_the_field_invalid_and_links_its_error(name: str) -> None:
    response = verified_client(make_room_admin()).post("/rooms/new/", {"name": name})

    page = response.content.decode()
    assert response.status_code == 400
    field = re.search(r'<input type="text" name="name"[^>]*>', page)
    assert field is not None
    assert 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="id_name_error"' in field.group(0)
    assert re.search(
        r'<div id="id_name_error" class="field-errors" role="alert"><p class="error">.+?</p>', page
    )
    assert not Room.objects.exists()
    assert not AuditEvent.objects.filter(action="room.created").exists()


def test_the_remove_confirmation_names_the_person_by_their_display_name() -> None:
    owner = make_user()
    bob = make_user(username="bob.smith", first_name="Bob", last_name="Smith")
    room = make_room(owner=owner, members=(bob,), name="Rates")

    page = verified_client(owner).get(f"/rooms/?room={room.pk}").content.decode()

    assert (
        'data-confirm="Remove Bob Smith (@bob.smith) from Rates? They lose access at once."' in page
    )
