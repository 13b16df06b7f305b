"""Every list of the API pages the same way (``safechat.pagination``): cursors both ways,
``has_more``, a checked ``limit``, ``before`` and ``after`` exclusive, empty values refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from rooms.models import Room
from rooms.services import membership_add, message_post
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

SIZE = 5  # items in every list below


@pytest.fixture
def owner() -> User:
    return make_room_admin(username="aaa-owner")


@pytest.fixture
def room(owner: User) -> Room:
    room = make_room(owner=owner, name="Rates")
    for i in range(SIZE - 1):
        membership_add(actor=owner, room=room, user=make_user(username=f"colleague{i}"))
    for i in range(SIZE):
        message_post(sender=owner, room=room, text=f"m{i}")
    colleague = User.objects.get(username="colleague0")
    for i in range(SIZE):
        message_post(sender=colleague, room=room, text=f"@aaa-owner look {i}")
    for i in range(SIZE - 1):
        make_room(owner=owner, name=f"Room {i}")
    for i in range(SIZE):
        api_token_create(actor=owner, name=f"t{i}", scope="read")
    return room


@pytest.fixture
def client(owner: User) -> Client:
    client = Client()
    sign_in_client(client, owner, verified=True)
    return client


def lists(room: Room) -> dict[str, tuple[str, bool]]:
    """Each list: its URL, and whether it is newest first."""
    return {
        "rooms": ("/api/v1/rooms/", False),
        "members": (f"/api/v1/rooms/{room.pk}/members/", False),
        "messages": (f"/api/v1/rooms/{room.pk}/messages/", True),
        "tokens": ("/api/v1/accounts/tokens/", False),
        "people": ("/api/v1/people/?q=colleague", False),
        "mentions": ("/api/v1/mentions/", True),
    }


KEYS = {
    "rooms": "id",
    "members": "user_id",
    "messages": "id",
    "tokens": "id",
    "people": "id",
    "mentions": "id",
}


def _get(client: Client, url: str, query: str) -> dict[str, Any]:
    joiner = "&" if "?" in url else "?"
    response = client.get(f"{url}{joiner}{query}")
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"results", "has_more", "next_before", "next_after"}
    return body


@pytest.mark.parametrize("name", list(KEYS))
def test_every_list_pages_both_ways_without_skipping_or_repeating(
    name: str, room: Room, client: Client
) -> None:
    # given a list and its whole content in one page
    url, newest_first = lists(room)[name]
    key = KEYS[name]
    whole = [item[key] for item in _get(client, url, "limit=50")["results"]]
    assert len(whole) >= SIZE - 1
    assert whole == sorted(whole, reverse=newest_first)

    # when it is walked two at a time from the start, then back from the end
    walked: list[int] = []
    query = "limit=2"
    while True:
        page = _get(client, url, query)
        walked += [item[key] for item in page["results"]]
        following = "next_before" if newest_first else "next_after"
        assert (page[following] is not None) == page["has_more"]
        if not page["has_more"]:
            break
        query = f"limit=2&{following.removeprefix('next_')}={page[following]}"
    back: list[int] = []
    reverse = "after" if newest_first else "before"
    query = f"limit=2&{reverse}={whole[-1]}"
    while True:
        page = _get(client, url, query)
        # each page is in the list's order, whichever way it was fetched
        ids = [item[key] for item in page["results"]]
        assert ids == sorted(ids, reverse=newest_first)
        back = ids + back
        if not page["has_more"]:
            break
        query = f"limit=2&{reverse}={page['next_' + reverse]}"

    # then both walks saw the whole list once, in order
    assert walked == whole
    assert back == whole[:-1]


@pytest.mark.parametrize("name", list(KEYS))
@pytest.mark.parametrize(
    ("query", "parameter", "code"),
    [
        ("before=", "before", "blank"),
        ("after=&limit=", "after", "blank"),
        ("limit=", "limit", "blank"),
        ("limit=0", "limit", "out_of_range"),
        ("limit=101", "limit", "out_of_range"),
        ("limit=99999999999999999999999", "limit", "out_of_range"),
        ("limit=two", "limit", "invalid"),
        ("before=0", "before", "out_of_range"),
        ("after=-1", "after", "out_of_range"),
        ("limit=-1", "limit", "out_of_range"),
        ("limit=+1", "limit", "invalid"),
        # Past the largest id a database stores: a 500 before (the driver cannot bind
        # it), found by the API's contract run.
        ("before=118951021527097109546399602573312", "before", "out_of_range"),
        ("after=9223372036854775808", "after", "out_of_range"),
        ("before=3&after=1", "after", "exclusive"),
        # Sent twice: which value counts is a guess (the last, silently, before).
        ("before=3&before=2", "before", "repeated"),
        ("limit=2&limit=3", "limit", "repeated"),
    ],
)
def test_every_list_refuses_a_bad_cursor_naming_the_parameter(
    name: str, query: str, parameter: str, code: str, room: Room, client: Client
) -> None:
    url, _ = lists(room)[name]
    joiner = "&" if "?" in url else "?"

    response = client.get(f"{url}{joiner}{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"] == [
        {"parameter": parameter, "code": code, "detail": body["errors"][0]["detail"]}
    ]


def test_an_empty_page_has_no_cursors(room: Room, client: Client) -> None:
    newest = _get(client, f"/api/v1/rooms/{room.pk}/messages/", "limit=1")["results"][0]["id"]

    page = _get(client, f"/api/v1/rooms/{room.pk}/messages/", f"after={newest}")

    assert page == {"results": [], "has_more": False, "next_before": None, "next_after": None}


def test_the_people_list_caps_its_page_lower(room: Room, client: Client) -> None:
    assert _get(client, "/api/v1/people/", "limit=50")["has_more"] is False
    assert client.get("/api/v1/people/?limit=51").status_code == 400


def test_the_schema_documents_the_cursor_parameters_and_page_shape(client: Client) -> None:
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()

    lists = (
        "/api/v1/rooms/",
        "/api/v1/accounts/tokens/",
        "/api/v1/people/",
        "/api/v1/rooms/{room_id}/files/",
    )
    for path in lists:
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["limit"]["schema"]["minimum"] == 1
        assert parameters["limit"]["schema"]["maximum"] in {50, 100}
        assert parameters["before"]["schema"]["minimum"] == 1
        assert parameters["after"]["schema"]["minimum"] == 0
        assert parameters["before"]["schema"]["maximum"] == 2**63 - 1
        assert parameters["after"]["schema"]["maximum"] == 2**63 - 1
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        page = schema["components"]["schemas"][ok["schema"]["$ref"].rsplit("/", 1)[1]]
        assert set(page["required"]) >= {"results", "has_more", "next_before", "next_after"}


def test_the_schema_documents_the_mentions_parameters_with_their_ranges(client: Client) -> None:
    # (the API's contract run found them undocumented: ``limit=0`` looked valid)
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()

    parameters = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/v1/mentions/"]["get"]["parameters"]
    }

    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 50, "default": 50}
    assert parameters["before"] == {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 2**63 - 1,
    }


@pytest.mark.parametrize("query", ["limit=0", "limit=51", "limit=", "before=", "before=0"])
def test_the_mentions_list_refuses_what_its_schema_does(client: Client, query: str) -> None:
    response = client.get(f"/api/v1/mentions/?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == query.split("=")[0]
