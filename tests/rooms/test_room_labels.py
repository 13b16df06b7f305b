"""What a room is called, for each person (``rooms.selectors.room_labels``): a direct
conversation by the other people in it, never by one's own name; rooms whose labels
would look alike in one person's list each told apart by a qualifier. The portal's room
list, title and notices and the API's room objects say the same."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.cache import cache

from accounts.models import User
from accounts.services import user_profile_update
from rooms.models import Room
from rooms.selectors import RoomLabel, labels_look_alike, room_label, room_labels
from rooms.services import direct_conversation_create, message_post
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

CYRILLIC_A = "\u0430"
FULLWIDTH_RATES = "\uff32\uff21\uff34\uff25\uff33"  # compatibility forms of RATES
CYRILLIC_PATE = "\u0420\u0410\u0422\u0415"  # PATE in Cyrillic capitals (ER, A, TE, IE)
CYRILLIC_BOC = "\u0412\u041e\u0421"  # BOC in Cyrillic capitals (VE, O, ES)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def person(username: str, first: str = "", last: str = "") -> User:
    return make_user(username=username, first_name=first, last_name=last)


def direct(actor: User, *others: User) -> Room:
    return direct_conversation_create(actor=actor, participants=list(others))


def chat_config(response: Any) -> dict[str, Any]:
    found = re.search(
        r'<script id="chat-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


# --- The selector ---------------------------------------------------------------------
def test_a_direct_conversation_is_called_by_the_other_person_for_each_side() -> None:
    # given Max and Rita, whose conversation is stored as "max, rita.r"
    max_, rita = person("max", "Max", "Muster"), person("rita.r", "Rita", "Rossi")
    room = direct(max_, rita)
    assert room.name == "max, rita.r"

    # then each sees it by the other's name, with the other's username beside it
    assert room_label(viewer=max_, room=room) == RoomLabel("Rita Rossi", "", ("rita.r",))
    assert room_label(viewer=rita, room=room) == RoomLabel("Max Muster", "", ("max",))
    assert room_label(viewer=max_, room=room).hint == "@rita.r"


def test_someone_without_a_name_is_shown_by_username() -> None:
    max_, rita = person("max", "Max", "Muster"), person("rita.r")

    assert room_label(viewer=max_, room=direct(max_, rita)).text == "rita.r"


def test_a_group_conversation_names_the_others_by_name_never_oneself() -> None:
    max_ = person("max", "Max", "Muster")
    zoe, ada, bob = person("zoe", "Zoe", "Aalto"), person("ada", "Ada", "Lind"), person("bob")
    room = direct(max_, zoe, ada, bob)

    label = room_label(viewer=max_, room=room)

    assert label == RoomLabel("Ada Lind, bob, Zoe Aalto", "", ("ada", "bob", "zoe"))
    assert "Max" not in label.full
    assert room_label(viewer=zoe, room=room).text == "Ada Lind, bob, Max Muster"


def test_a_channel_is_called_by_its_name() -> None:
    owner = person("olivia")
    room = make_room(owner=owner, name="Rates desk")

    assert room_label(viewer=owner, room=room) == RoomLabel("Rates desk")


@pytest.mark.parametrize("other_name", ["Rates", "rates", f"R{CYRILLIC_A}tes", FULLWIDTH_RATES])
def test_two_channels_that_look_alike_are_each_qualified_by_their_number(
    other_name: str,
) -> None:
    # given two rooms of hers whose names look the same, and a third
    olivia = person("olivia")
    first = make_room(owner=olivia, name="Rates")
    second = make_room(owner=olivia, name=other_name)
    third = make_room(owner=olivia, name="FX")

    labels = room_labels(viewer=olivia)

    # then each of the two says which it is, the third needs nothing
    assert labels[first.pk] == RoomLabel("Rates", f"#{first.pk}")
    assert labels[second.pk] == RoomLabel(other_name, f"#{second.pk}")
    assert labels[first.pk].full == f"Rates (#{first.pk})"
    assert labels[third.pk] == RoomLabel("FX")


@pytest.mark.parametrize(
    ("name", "other_name"),
    [
        ("PATE", CYRILLIC_PATE),
        ("Pate desk", f"{CYRILLIC_PATE[0]}ate desk"),
        ("BOC", CYRILLIC_BOC),
        ("Boc", f"{CYRILLIC_BOC[0]}oc"),
        ("B0B", "bob"),
    ],
    ids=["all-capitals", "capital-er", "boc-capitals", "capital-ve", "zero-for-o"],
)
def test_capital_look_alikes_in_another_script_are_each_qualified(
    name: str, other_name: str
) -> None:
    # given two rooms whose names differ only by capitals of another script (lower-cased,
    # Cyrillic te and ve do not look like t and b; their capitals look like T and B)
    olivia = person("olivia")
    first = make_room(owner=olivia, name=name)
    second = make_room(owner=olivia, name=other_name)

    labels = room_labels(viewer=olivia)

    # then each of the two says which it is
    assert labels[first.pk] == RoomLabel(name, f"#{first.pk}")
    assert labels[second.pk] == RoomLabel(other_name, f"#{second.pk}")


def test_look_alike_labels_are_judged_by_their_skeleton() -> None:
    assert labels_look_alike("Rates", f"r{CYRILLIC_A}tes")
    assert labels_look_alike("rn desk", "m desk")
    assert not labels_look_alike("Rates", "Rates desk")
    assert labels_look_alike("PATE", CYRILLIC_PATE)
    assert labels_look_alike("BOC desk", f"{CYRILLIC_BOC} desk")
    assert not labels_look_alike("boc", CYRILLIC_BOC.lower())  # "вос" does not look like "boc"


def test_whether_a_name_needs_a_qualifier_is_decided_in_each_persons_own_list() -> None:
    # given two rooms called "Rates"; Paul is in one only
    olivia, paul = person("olivia"), person("paul")
    private = make_room(owner=olivia, name="Rates")
    shared = make_room(owner=olivia, members=(paul,), name="Rates")

    # then Olivia's two are told apart; Paul's one needs nothing, and tells him nothing
    # of the other's existence
    assert room_labels(viewer=olivia)[shared.pk].qualifier == f"#{shared.pk}"
    assert room_labels(viewer=paul) == {shared.pk: RoomLabel("Rates")}
    assert private.pk not in room_labels(viewer=paul)


def test_two_people_of_one_name_are_told_apart_by_username() -> None:
    max_ = person("max", "Max", "Muster")
    alice = person("alice", "Alice", "Martin")
    other_alice = person("alice.m", "Alice", "Martin")
    first, second = direct(max_, alice), direct(max_, other_alice)

    labels = room_labels(viewer=max_)

    assert labels[first.pk] == RoomLabel("Alice Martin", "@alice", ("alice",))
    assert labels[second.pk] == RoomLabel("Alice Martin", "@alice.m", ("alice.m",))


def test_a_channel_named_like_a_person_and_their_conversation_are_told_apart() -> None:
    max_, alice = person("max", "Max", "Muster"), person("alice", "Alice", "Martin")
    channel = make_room(owner=max_, members=(alice,), name="alice martin")
    conversation = direct(max_, alice)

    labels = room_labels(viewer=max_)

    assert labels[channel.pk].qualifier == f"#{channel.pk}"
    assert labels[conversation.pk].qualifier == "@alice"


def test_two_conversations_with_the_same_people_are_told_apart_by_number() -> None:
    max_, ada, bob = person("max"), person("ada", "Ada", "Lind"), person("bob")
    first, second = direct(max_, ada, bob), direct(max_, ada, bob)
    assert first.pk != second.pk

    labels = room_labels(viewer=max_)

    assert labels[first.pk].qualifier == f"@ada, @bob · #{first.pk}"
    assert labels[second.pk].qualifier == f"@ada, @bob · #{second.pk}"


def test_a_new_display_name_is_the_conversations_new_label() -> None:
    max_, rita = person("max"), person("rita.r", "Rita", "Rossi")
    room = direct(max_, rita)

    user_profile_update(actor=rita, first_name="Rita", last_name="Rossi-Bianchi")

    assert room_label(viewer=max_, room=room).text == "Rita Rossi-Bianchi"


# --- The portal -------------------------------------------------------------------------
def test_the_room_list_and_title_call_a_conversation_by_the_other_person() -> None:
    # given Max's conversation with Rita and a room of his
    max_, rita = person("max", "Max", "Muster"), person("rita.r", "Rita", "Rossi")
    room = direct(max_, rita)
    make_room(owner=max_, name="Zinc desk")

    # when Max opens it
    response = verified_client(max_).get(f"/rooms/?room={room.pk}")

    # then the list, the heading, the window's title and the composer name Rita, isolated,
    # with her username as the tooltip; Max's own name and the stored name appear nowhere
    page = response.content.decode()
    assert response.status_code == 200
    assert (
        f'data-label="Rita Rossi">\n          <a href="/rooms/?room={room.pk}" aria-current="page"'
        ' title="@rita.r">' in page
    )
    assert '<bdi class="room-name">Rita Rossi</bdi>' in page
    assert (
        '<h1 id="room-title" title="@rita.r">@ <bdi class="room-label">Rita Rossi</bdi></h1>'
        in page
    )
    assert "<title>Rita Rossi · SafeChat</title>" in page
    assert 'placeholder="Message @Rita Rossi"' in page
    assert "max, rita.r" not in page
    assert "Max Muster" not in page.split('<nav class="pane chat-rooms"')[1].split("</nav>")[0]
    # and the client has the same label
    assert chat_config(response)["room"]["label"] == {
        "text": "Rita Rossi", "qualifier": "", "usernames": ["rita.r"],
    }  # fmt: skip
    # and the list is in label order: Rita before Zinc
    assert page.index("Rita Rossi</bdi>") < page.index("Zinc desk</bdi>")


def test_the_room_list_and_title_tell_two_rooms_of_one_name_apart() -> None:
    olivia = person("olivia")
    first = make_room(owner=olivia, name="Rates")
    second = make_room(owner=olivia, name="Rates")

    page = verified_client(olivia).get(f"/rooms/?room={second.pk}").content.decode()

    for room in (first, second):
        assert f'data-label="Rates (#{room.pk})"' in page
        assert f'<span class="room-qualifier">(<bdi>#{room.pk}</bdi>)</span>' in page
    assert (
        f'<bdi class="room-label">Rates</bdi> <span class="room-qualifier">(<bdi>#{second.pk}'
        "</bdi>)</span></h1>" in page
    )
    assert f"<title>Rates (#{second.pk}) · SafeChat</title>" in page


def test_the_browse_page_tells_look_alike_rooms_apart() -> None:
    # given Paul in a room "PATE", and two listed rooms: one named with Cyrillic capitals,
    # one with an unrelated name
    olivia, paul = person("olivia"), person("paul")
    make_room(owner=olivia, members=(paul,), name="PATE")
    alike = make_room(owner=olivia, name=CYRILLIC_PATE, visibility=Room.Visibility.LISTED)
    other = make_room(owner=olivia, name="FX desk", visibility=Room.Visibility.LISTED)

    # when Paul browses
    page = verified_client(paul).get("/rooms/browse/").content.decode()

    # then the look-alike is qualified, as the room list would, and the other is not
    assert (
        f'<bdi>{CYRILLIC_PATE}</bdi> <span class="room-qualifier">(<bdi>#{alike.pk}</bdi>)' in page
    )
    assert f'Join<span class="visually-hidden"> {CYRILLIC_PATE} (#{alike.pk})</span>' in page
    assert "<bdi>FX desk</bdi></span>" in page
    assert f"#{other.pk}" not in page


def test_two_listed_rooms_of_one_name_are_told_apart_on_the_browse_page() -> None:
    olivia, paul = person("olivia"), person("paul")
    first = make_room(owner=olivia, name="Rates", visibility=Room.Visibility.LISTED)
    second = make_room(owner=olivia, name="rates", visibility=Room.Visibility.LISTED)

    page = verified_client(paul).get("/rooms/browse/").content.decode()

    for room in (first, second):
        assert f'<span class="room-qualifier">(<bdi>#{room.pk}</bdi>)</span>' in page


def test_joining_says_which_room_was_joined() -> None:
    olivia, paul = person("olivia"), person("paul")
    mine = make_room(owner=olivia, members=(paul,), name="Rates")
    listed = make_room(owner=olivia, name="Rates", visibility=Room.Visibility.LISTED)

    response = verified_client(paul).post(f"/rooms/{listed.pk}/join/", follow=True)

    assert [str(m) for m in response.context["messages"]] == [f"You joined “Rates (#{listed.pk})”."]
    assert f'data-label="Rates (#{mine.pk})"' in response.content.decode()


def test_the_mentions_page_names_the_conversation_by_the_other_person() -> None:
    max_, rita = person("max", "Max", "Muster"), person("rita.r", "Rita", "Rossi")
    room = direct(max_, rita)
    message_post(sender=rita, room=room, text="@max the axe list is out")

    page = verified_client(max_).get("/rooms/mentions/").content.decode()

    assert '<span class="mention-room" title="@rita.r">@<bdi>Rita Rossi</bdi></span>' in page
    assert "Show in <bdi>Rita Rossi</bdi>" in page
    assert "max, rita.r" not in page


# --- The API ----------------------------------------------------------------------------
def test_the_api_gives_each_room_its_label_for_the_caller() -> None:
    # given a conversation between Max and Rita, and two rooms of one name of Max's
    max_, rita = person("max", "Max", "Muster"), person("rita.r", "Rita", "Rossi")
    room = direct(max_, rita)
    first = make_room(owner=max_, name="Rates")
    second = make_room(owner=max_, members=(rita,), name="Rates")

    # when each lists their rooms and reads the conversation
    listed = verified_client(max_).get("/api/v1/rooms/").json()["results"]
    hers = verified_client(rita).get("/api/v1/rooms/").json()["results"]
    detail = verified_client(rita).get(f"/api/v1/rooms/{room.pk}/").json()

    # then each answer calls rooms what the portal calls them for that person, and keeps
    # the stored name
    labels = {r["id"]: r["label"] for r in listed}
    assert labels[room.pk] == {"text": "Rita Rossi", "qualifier": "", "usernames": ["rita.r"]}
    assert labels[first.pk] == {"text": "Rates", "qualifier": f"#{first.pk}", "usernames": []}
    assert labels[second.pk]["qualifier"] == f"#{second.pk}"
    assert {r["id"]: r["label"]["qualifier"] for r in hers} == {room.pk: "", second.pk: ""}
    assert detail["label"] == {"text": "Max Muster", "qualifier": "", "usernames": ["max"]}
    assert detail["name"] == "max, rita.r"


def test_the_openapi_schema_documents_the_label() -> None:
    schema = verified_client(person("max")).get("/api/schema/", HTTP_ACCEPT="application/json")

    components = schema.json()["components"]["schemas"]
    room = components["RoomOutput"]
    assert "label" in room["required"]
    assert "per viewer" in room["properties"]["label"]["description"]
    label = components["RoomLabelOutput"]
    assert set(label["properties"]) == {"text", "qualifier", "usernames"}
    assert set(label["required"]) == {"text", "qualifier", "usernames"}
    assert "display names" in label["properties"]["text"]["description"]


def test_the_created_conversation_is_answered_with_the_callers_label() -> None:
    max_, rita = person("max", "Max", "Muster"), person("rita.r", "Rita", "Rossi")

    response = verified_client(max_).post(
        "/api/v1/direct/", {"participants": [rita.pk]}, content_type="application/json"
    )

    assert response.status_code == 201
    assert response.json()["label"]["text"] == "Rita Rossi"
