"""Room names, topics, reactions and mentions cannot deceive, on every edge: the portal,
the API and the services give the same answer and write nothing on a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from rooms.models import Mention, Reaction, Room
from rooms.selectors import message_reactions
from rooms.services import message_post, reaction_toggle, room_create, room_update
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

RLO = "\u202e"
BAD_NAMES = [
    f"Rates{RLO}ksed",
    "\u200b\u200b",
    "\u3164",
    "\u2067Rates\u2069",
    "Tr\u00adading",
    "Tr\u200bading",
    "Tr\u2060ading",
]
BAD_NAME_IDS = [
    "rlo",
    "zero-width-only",
    "hangul-filler",
    "isolate",
    "soft-hyphen-inside",
    "zero-width-space-inside",
    "word-joiner-inside",
]


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def verified(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def written() -> tuple[Any, ...]:
    return (
        sorted(Room.objects.values_list("name", "topic")),
        Reaction.objects.count(),
        AuditEvent.objects.filter(action__in=["room.created", "room.updated"]).count(),
    )


@pytest.mark.parametrize("name", BAD_NAMES, ids=BAD_NAME_IDS)
def test_a_deceptive_room_name_is_refused_by_the_service(name: str) -> None:
    admin = make_room_admin()

    with pytest.raises(ValidationError):
        room_create(actor=admin, name=name)

    assert not Room.objects.exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=BAD_NAME_IDS)
def test_a_deceptive_room_name_is_refused_by_the_api_and_the_portal(name: str) -> None:
    client = verified(make_room_admin())
    before = written()

    api = client.post("/api/v1/rooms/create/", {"name": name}, content_type="application/json")
    portal = client.post("/rooms/new/", {"name": name})

    assert api.status_code == 400
    assert portal.status_code == 400
    assert written() == before


def test_a_rename_to_a_name_with_a_soft_hyphen_inside_is_refused_on_every_edge() -> None:
    # given a room "Rates desk" and its owner
    owner = make_room_admin()
    room = make_room(owner=owner, name="Rates desk")
    client = verified(owner)
    before = written()

    # when the owner renames it to "Trading" with a soft hyphen inside, on each edge
    with pytest.raises(ValidationError) as refused:
        room_update(actor=owner, room=room, name="Tr\u00adading")
    api = client.patch(
        f"/api/v1/rooms/{room.pk}/", {"name": "Tr\u00adading"}, content_type="application/json"
    )
    portal = client.post(
        f"/rooms/{room.pk}/settings/", {"name": "Tr\u00adading", "topic": ""}, follow=True
    )

    # then every edge refuses, with the same reason, and nothing changed
    assert refused.value.error_dict["name"][0].code == "default_ignorable"
    assert api.status_code == 400
    assert "U+00AD" in api.content.decode()
    assert "U+00AD" in portal.content.decode()  # the reason, on the room's page
    assert written() == before
    assert Room.objects.get(pk=room.pk).name == "Rates desk"


def test_a_topic_with_a_direction_override_is_refused_on_update_and_nothing_changes() -> None:
    owner = make_room_admin()
    room = make_room(owner=owner, name="Rates desk")
    before = written()

    with pytest.raises(ValidationError):
        room_update(actor=owner, room=room, topic=f"fills {RLO}elas rof")
    api = verified(owner).patch(
        f"/api/v1/rooms/{room.pk}/", {"topic": f"x{RLO}y"}, content_type="application/json"
    )

    assert api.status_code == 400
    assert written() == before


def test_a_right_to_left_room_name_is_welcome() -> None:
    room = room_create(
        actor=make_room_admin(), name="\u05d3\u05e1\u05e7 \u05e8\u05d9\u05d1\u05d9\u05ea"
    )

    assert Room.objects.get(pk=room.pk).name.startswith("\u05d3")


@pytest.mark.parametrize("word", ["ok", "+1", "lgtm", "\U0001f44d\U0001f44d"])
def test_a_reaction_that_is_not_one_emoji_is_refused_everywhere(word: str) -> None:
    owner = make_room_admin()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="Fill at 99.5")
    before = written()

    with pytest.raises(ValidationError):
        reaction_toggle(actor=owner, message=message, emoji=word)
    api = verified(owner).post(
        f"/api/v1/rooms/{room.pk}/messages/{message.pk}/reactions/",
        {"emoji": word},
        content_type="application/json",
    )

    assert api.status_code == 400
    assert written() == before


def test_an_emoji_reaction_is_set() -> None:
    owner = make_room_admin()
    message = message_post(sender=owner, room=make_room(owner=owner), text="Fill at 99.5")

    assert reaction_toggle(actor=owner, message=message, emoji="\U0001f44d\U0001f3fd") is True
    assert Reaction.objects.get().emoji == "\U0001f44d\U0001f3fd"


HEART_TEXT, HEART_EMOJI = "\u2764", "\u2764\ufe0f"


def test_a_heart_with_and_without_its_variation_selector_is_one_reaction() -> None:
    # given a message and two people
    owner, other = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(other,))
    message = message_post(sender=owner, room=room, text="Fill at 99.5")

    # when one reacts with the text heart (service) and the other with the emoji heart (API)
    reaction_toggle(actor=owner, message=message, emoji=HEART_TEXT)
    api = verified(other).post(
        f"/api/v1/rooms/{room.pk}/messages/{message.pk}/reactions/",
        {"emoji": HEART_EMOJI},
        content_type="application/json",
    )

    # then both are one reaction, stored in one spelling, counted twice
    assert api.status_code in (200, 201)
    assert set(Reaction.objects.values_list("emoji", flat=True)) == {HEART_EMOJI}
    assert message_reactions(message=message) == {HEART_EMOJI: [owner.pk, other.pk]}


def test_toggling_the_other_spelling_unsets_the_reaction() -> None:
    owner = make_room_admin()
    message = message_post(sender=owner, room=make_room(owner=owner), text="Fill at 99.5")
    assert reaction_toggle(actor=owner, message=message, emoji=HEART_EMOJI) is True

    assert reaction_toggle(actor=owner, message=message, emoji=f"{HEART_TEXT}\ufe0e") is False

    assert not Reaction.objects.exists()


def test_a_heart_stored_before_the_rule_counts_with_the_emoji_heart_and_toggles_off() -> None:
    # given a text heart stored as it was before reactions took one spelling, and an emoji
    # heart from someone else
    owner, other = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(other,))
    message = message_post(sender=owner, room=room, text="Fill at 99.5")
    Reaction.objects.create(message=message, user=owner, emoji=HEART_TEXT)
    reaction_toggle(actor=other, message=message, emoji=HEART_EMOJI)

    # then they are read as one reaction
    assert message_reactions(message=message) == {HEART_EMOJI: [owner.pk, other.pk]}

    # and the owner's toggle of the emoji heart removes the old spelling
    assert reaction_toggle(actor=owner, message=message, emoji=HEART_EMOJI) is False
    assert list(Reaction.objects.values_list("user_id", "emoji")) == [(other.pk, HEART_EMOJI)]


def test_a_mention_in_any_case_reaches_the_person() -> None:
    owner = make_room_admin()
    alice = make_user(username="alice.smith")
    room = make_room(owner=owner, members=(alice,))

    message = message_post(sender=owner, room=room, text="@Alice.Smith can you check this?")

    assert list(Mention.objects.filter(message=message).values_list("user_id", flat=True)) == [
        alice.pk
    ]
