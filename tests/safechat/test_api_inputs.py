"""Every value an API input takes is of the JSON type the schema documents, as sent:
``safechat.fields``' strict string, integer and boolean fields; the schema states what
they refuse (a blank string, an id below 1)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers
from rest_framework.views import APIView

from accounts.models import ApiToken
from rooms.models import Membership, Room
from safechat.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from tests.accounts.factories import sign_in_client
from tests.rooms.factories import make_room, make_room_admin


def _api_views() -> list[type[APIView]]:
    def walk(patterns: list[Any], prefix: str) -> list[type[APIView]]:
        found: list[type[APIView]] = []
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                found += walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("/api/v"):
                view = getattr(pattern.callback, "view_class", None)
                if isinstance(view, type) and issubclass(view, APIView):
                    found.append(view)
        return found

    return walk(get_resolver().url_patterns, "/")


def _input_serializers() -> list[type[serializers.Serializer[Any]]]:
    return [
        value
        for view in _api_views()
        for value in vars(view).values()
        if isinstance(value, type) and issubclass(value, serializers.Serializer)
    ]


def test_every_string_field_of_every_api_input_is_strict() -> None:
    inputs = _input_serializers()
    assert len(inputs) >= 10  # the walk is real

    loose = [
        f"{serializer.__qualname__}.{name}"
        for serializer in inputs
        for name, field in serializer().fields.items()
        if isinstance(field, serializers.CharField)
        and not field.read_only
        and not isinstance(field, StrictCharField)
    ]

    assert loose == []


@pytest.mark.django_db
@pytest.mark.parametrize("value", [123, 1.5, True, ["a"], {"a": 1}])
def test_a_json_number_for_a_name_is_refused_not_coerced(value: Any) -> None:
    # given a room admin
    admin = make_room_admin()
    client = Client()
    sign_in_client(client, admin, verified=True)
    room = make_room(owner=admin, name="Desk")

    # when names and topics are sent as something other than strings
    answers = [
        client.post("/api/v1/rooms/create/", {"name": value}, content_type="application/json"),
        client.patch(f"/api/v1/rooms/{room.pk}/", {"name": value}, content_type="application/json"),
        client.patch(
            f"/api/v1/rooms/{room.pk}/", {"topic": value}, content_type="application/json"
        ),
        client.post(
            "/api/v1/accounts/tokens/",
            {"name": value, "scope": "read"},
            content_type="application/json",
        ),
    ]

    # then each is a 400 naming the field, and nothing was stored
    for answer in answers:
        assert answer.status_code == 400, answer.content
        assert answer.json()["errors"][0]["pointer"] in {"#/name", "#/topic"}
    assert list(Room.objects.values_list("name", "topic")) == [("Desk", "")]
    assert not ApiToken.objects.exists()


def _body_inputs() -> list[type[serializers.Serializer[Any]]]:
    # Query serializers only document parameters (a query string's values are text);
    # output ones only document answers.
    return [
        s
        for s in _input_serializers()
        if not s.__name__.endswith("Query") and "Output" not in s.__name__
    ]


def test_every_number_and_boolean_field_of_every_api_body_is_strict() -> None:
    inputs = _body_inputs()

    def fields(serializer: type[serializers.Serializer[Any]]) -> list[tuple[str, Any]]:
        found = []
        for name, field in serializer().fields.items():
            found.append((name, field))
            if isinstance(field, serializers.ListField):
                found.append((f"{name}[]", field.child))
        return found

    loose = [
        f"{serializer.__qualname__}.{name}"
        for serializer in inputs
        for name, field in fields(serializer)
        if not field.read_only
        and (
            (
                isinstance(field, serializers.IntegerField)
                and not isinstance(field, StrictIntegerField)
            )
            or (
                isinstance(field, serializers.BooleanField)
                and not isinstance(field, StrictBooleanField)
            )
        )
    ]

    assert loose == []


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_a_boolean_sent_as_anything_but_true_or_false_is_refused(value: Any) -> None:
    # given a room admin and their room (found by the API's contract run: 0 made a room)
    admin = make_room_admin()
    client = Client()
    sign_in_client(client, admin, verified=True)
    room = make_room(owner=admin, name="Desk")

    # when history visibility is sent as something other than a JSON boolean
    created = client.post(
        "/api/v1/rooms/create/",
        {"name": "Other desk", "history_visible": value},
        content_type="application/json",
    )
    updated = client.patch(
        f"/api/v1/rooms/{room.pk}/", {"history_visible": value}, content_type="application/json"
    )

    # then both are a 400 naming the field, and nothing was stored
    for answer in (created, updated):
        assert answer.status_code == 400, answer.content
        assert answer.json()["errors"][0]["pointer"] == "#/history_visible"
    assert list(Room.objects.values_list("name", "history_visible")) == [("Desk", False)]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["{pk}", 1.0, True])
def test_an_id_sent_as_anything_but_a_json_integer_is_refused(value: Any) -> None:
    # given an owner, a room and a colleague who is not in it
    admin = make_room_admin()
    colleague = make_room_admin()
    client = Client()
    sign_in_client(client, admin, verified=True)
    room = make_room(owner=admin, name="Desk")
    sent = str(colleague.pk) if value == "{pk}" else value

    # when their id is sent as a string, a fraction or a boolean
    answers = [
        client.post(
            f"/api/v1/rooms/{room.pk}/members/",
            {"user_id": sent},
            content_type="application/json",
        ),
        client.post("/api/v1/direct/", {"participants": [sent]}, content_type="application/json"),
        client.post(
            "/api/v1/accounts/tokens/",
            {"name": "ci", "scope": "read", "days": sent},
            content_type="application/json",
        ),
    ]

    # then each is a 400 naming the value, and nobody was added, nothing created
    pointers = [a.json()["errors"][0]["pointer"] for a in answers]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert pointers == ["#/user_id", "#/participants/0", "#/days"]
    assert list(Membership.objects.filter(room=room).values_list("user_id", flat=True)) == [
        admin.pk
    ]
    assert Room.objects.count() == 1
    assert not ApiToken.objects.exists()


def _openapi(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


@pytest.mark.django_db
def test_the_schema_says_which_strings_may_not_be_blank_and_which_fields_a_patch_needs() -> None:
    # given the schema, read by a signed-in person
    client = Client()
    sign_in_client(client, make_room_admin(), verified=True)
    schema = _openapi(client)
    components = schema["components"]["schemas"]
    post = schema["paths"]["/api/v1/rooms/{room_id}/messages/"]["post"]
    headers = {p["name"]: p["schema"] for p in post["parameters"] if p["in"] == "header"}

    # then a string that may not be blank has a character that is not white space, one
    # that may stays free; a PATCH requires what its view requires; an id starts at 1
    assert components["RoomCreateInput"]["properties"]["name"]["pattern"] == r"\S"
    assert components["MessageListInput"]["properties"]["text"]["pattern"] == r"\S"
    assert components["ReactionToggleInput"]["properties"]["emoji"]["pattern"] == r"\S"
    assert components["TokenCreateInput"]["properties"]["name"]["pattern"] == r"\S"
    assert "pattern" not in components["RoomCreateInput"]["properties"]["topic"]
    assert components["MemberDetailInput"]["required"] == ["role"]
    assert components["MessageDetailInput"]["required"] == ["text"]
    assert "required" not in components["RoomDetailUpdateInput"]
    assert not [name for name in components if name.startswith("Patched")]
    assert components["MemberListInput"]["properties"]["user_id"]["minimum"] == 1
    assert components["MessageListInput"]["properties"]["parent_id"]["minimum"] == 1
    participants = components["DirectConversationCreateInput"]["properties"]["participants"]
    assert participants["items"]["minimum"] == 1
    days = components["TokenCreateInput"]["properties"]["days"]
    assert (days["minimum"], days["maximum"]) == (1, 366)
    # an Idempotency-Key is 1-64 visible ASCII characters but the comma (never empty)
    assert headers["Idempotency-Key"]["pattern"] == r"^[\x21-\x2b\x2d-\x7e]{1,64}$"


@pytest.mark.django_db
def test_an_id_no_database_column_holds_is_a_400_on_every_backend() -> None:
    # given a member of a room with one message
    admin = make_room_admin()
    client = Client()
    sign_in_client(client, admin, verified=True)
    room = make_room(owner=admin, name="Desk")
    huge = 2**63

    # when ids past a signed 64-bit integer are sent (SQLite's driver overflows on them)
    answers = [
        client.post(
            f"/api/v1/rooms/{room.pk}/messages/",
            {"text": "hello", "parent_id": huge},
            content_type="application/json",
        ),
        client.post(
            f"/api/v1/rooms/{room.pk}/members/", {"user_id": huge}, content_type="application/json"
        ),
    ]

    # then each is a 400 naming the field, and nothing was written
    assert [a.status_code for a in answers] == [400, 400]
    assert [a.json()["errors"][0]["pointer"] for a in answers] == ["#/parent_id", "#/user_id"]
    assert not room.messages.exists()
