"""Every string an API input takes is a string as sent: ``safechat.fields.StrictCharField``."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers
from rest_framework.views import APIView

from accounts.models import ApiToken
from rooms.models import Room
from safechat.fields import StrictCharField
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
