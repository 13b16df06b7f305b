"""The reaction picker's emoji: from the ``emoji`` package's data, each one a reaction the
server accepts, served once per process as cacheable JSON to people signed in."""

from __future__ import annotations

import json

import emoji
import pytest
from django.test import Client

from rooms import reaction_picker
from rooms.models import Reaction
from rooms.services import message_post, reaction_toggle
from rooms.services.messages import MAX_EMOJI_LENGTH
from safechat.unicode_text import validate_reaction
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room

EMOJI_URL = "/rooms/emoji.json"


def test_every_emoji_offered_is_one_the_server_accepts_as_a_reaction() -> None:
    offered = reaction_picker.picker_emoji()

    assert len(offered) > 1500  # the Unicode list, not a hand-picked few
    for entry in offered:
        validate_reaction(entry.emoji)
        assert len(entry.emoji) <= MAX_EMOJI_LENGTH
    assert len({entry.emoji for entry in offered}) == len(offered)


def test_the_list_is_the_packages_names_without_skin_tone_variants() -> None:
    offered = {entry.emoji: entry for entry in reaction_picker.picker_emoji()}
    tones = {chr(code) for code in range(0x1F3FB, 0x1F400)}

    assert offered["👍"].name == "thumbs up"
    assert "+1" in offered["👍"].aliases.split()
    assert offered["🚀"].name == emoji.EMOJI_DATA["🚀"]["en"].strip(":").replace("_", " ")
    assert not [value for value in offered if tones & set(value)]
    fully_qualified = emoji.STATUS["fully_qualified"]
    assert all(emoji.EMOJI_DATA[value]["status"] == fully_qualified for value in offered)
    assert all(
        float(emoji.EMOJI_DATA[value]["E"]) <= reaction_picker.PICKER_MAX_EMOJI_VERSION
        for value in offered
    )


@pytest.mark.django_db
def test_every_quick_reaction_is_offered_and_stored_by_the_service() -> None:
    # given a member's message
    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="done")
    offered = {entry.emoji for entry in reaction_picker.picker_emoji()}

    # when the member reacts with each quick reaction
    for value in reaction_picker.QUICK_REACTIONS:
        assert value in offered
        assert reaction_toggle(actor=owner, message=message, emoji=value) is True

    # then each is stored, and each is named for the page
    stored = set(Reaction.objects.filter(message=message).values_list("emoji", flat=True))
    assert stored == set(reaction_picker.QUICK_REACTIONS)
    assert all(q["name"] for q in reaction_picker.quick_reactions())


@pytest.mark.django_db
def test_the_list_is_served_as_cacheable_json_to_a_signed_in_person() -> None:
    # given a signed-in person
    client = Client()
    sign_in_client(client, make_user(), verified=True)

    # when the page asks for the list, then again with its validator
    response = client.get(EMOJI_URL)
    again = client.get(EMOJI_URL, headers={"If-None-Match": response["ETag"]})

    # then it is the package's list, kept by the browser for a day, then a 304
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, max-age=86400"
    body = json.loads(response.content)
    assert body["version"] == emoji.__version__
    assert ["👍", "thumbs up", "thumbsup +1"] in body["emoji"]
    assert len(body["emoji"]) == len(reaction_picker.picker_emoji())
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.django_db
def test_the_list_is_not_served_before_the_second_factor() -> None:
    anonymous = Client().get(EMOJI_URL)
    unverified = Client()
    sign_in_client(unverified, make_user(), verified=False)

    assert anonymous.status_code == 302
    assert "/accounts/sign-in/" in anonymous["Location"]
    assert unverified.get(EMOJI_URL).status_code in (302, 403)
    assert b"thumbs up" not in anonymous.content


@pytest.mark.django_db
def test_the_chat_page_names_the_quick_reactions_and_the_list() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="levels at 99.5")
    client = Client()
    sign_in_client(client, owner, verified=True)

    response = client.get(f"/rooms/?room={room.pk}")

    config = response.context["config"]
    assert config["urls"]["emoji"] == EMOJI_URL
    assert [q["emoji"] for q in config["reactions"]["quick"]] == list(
        reaction_picker.QUICK_REACTIONS
    )
    assert 'data-action="react-pick"' in response.content.decode()
