"""The room API: an access matrix over every route and role, plus behaviour and bad input.

Every denied call is checked to have written nothing: no room, membership,
message, reaction or read-marker change, and no success audit event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from rooms.models import Membership, Message, Reaction, Room
from rooms.services import message_post
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

ROLES = [
    "anonymous",
    "unverified",
    "non_member",
    "compliance_officer",
    "read_only",
    "member",
    "moderator",
    "owner",
]
SUCCESS_ACTIONS = [
    "room.created", "room.updated", "room.archived", "room.member.added",
    "room.member.removed", "room.member.role_changed", "message.posted",
    "message.edited", "message.deleted",
]  # fmt: skip


@dataclass
class World:
    room: Room
    owner: User
    users: dict[str, User]
    own_message: dict[str, Message]
    others_message: Message
    outsider: User
    bystander: User


def build_world() -> World:
    owner = make_user(username="owner")
    users = {role: make_user(username=role) for role in ROLES if role not in ("anonymous", "owner")}
    grant_role(users["compliance_officer"], "compliance_officer")
    room = make_room(owner=owner, name="Rates desk")
    from rooms.services import membership_add

    for role in ("read_only", "member", "moderator"):
        membership_add(actor=owner, room=room, user=users[role], role=role)
    bystander = make_user(username="bystander")
    membership_add(actor=owner, room=room, user=bystander)
    users["owner"] = owner
    own = {
        role: message_post(sender=users[role], room=room, text=f"by {role}")
        for role in ("member", "moderator", "owner")
    }
    others = message_post(sender=owner, room=room, text="by owner, for others")
    return World(
        room=room,
        owner=owner,
        users=users,
        own_message=own,
        others_message=others,
        outsider=make_user(username="outsider"),
        bystander=bystander,
    )


def client_for(role: str, world: World) -> Client:
    client = Client()
    if role == "anonymous":
        return client
    sign_in_client(client, world.users[role], verified=role != "unverified")
    return client


def state() -> tuple[Any, ...]:
    return (
        Room.objects.count(),
        sorted(Membership.objects.values_list("room_id", "user_id", "role")),
        sorted(Message.objects.values_list("id", "revision", "deleted_at")),
        Reaction.objects.count(),
        sorted(Membership.objects.values_list("last_read_message_id", flat=True)),
        AuditEvent.objects.filter(action__in=SUCCESS_ACTIONS).count(),
        sorted(Room.objects.values_list("name", "topic", "archived_at")),
    )


Call = Callable[[Client, World, str], Any]

# route name -> (call, the roles allowed to succeed, the success status)
ROUTES: dict[str, tuple[Call, set[str], int]] = {
    "list rooms": (lambda c, w, r: c.get("/api/v1/rooms/"), set(ROLES[2:]), 200),
    "create room": (
        lambda c, w, r: c.post(
            "/api/v1/rooms/create/", {"name": "New"}, content_type="application/json"
        ),
        {"owner"},  # the room's creator holds accounts.create_room; nobody else here does
        201,
    ),
    "room detail": (
        lambda c, w, r: c.get(f"/api/v1/rooms/{w.room.pk}/"),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
    "update room": (
        lambda c, w, r: c.patch(
            f"/api/v1/rooms/{w.room.pk}/", {"topic": "t"}, content_type="application/json"
        ),
        {"owner"},
        200,
    ),
    "archive room": (lambda c, w, r: c.post(f"/api/v1/rooms/{w.room.pk}/archive/"), {"owner"}, 200),
    "list members": (
        lambda c, w, r: c.get(f"/api/v1/rooms/{w.room.pk}/members/"),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
    "add member": (
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{w.room.pk}/members/",
            {"user_id": w.outsider.pk},
            content_type="application/json",
        ),
        {"moderator", "owner"},
        201,
    ),
    "change role": (
        lambda c, w, r: c.patch(
            f"/api/v1/rooms/{w.room.pk}/members/{w.users['member'].pk}/",
            {"role": "read_only"},
            content_type="application/json",
        ),
        {"moderator", "owner"},
        200,
    ),
    "remove member": (
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.bystander.pk}/"),
        {"moderator", "owner"},
        204,
    ),
    "list messages": (
        lambda c, w, r: c.get(f"/api/v1/rooms/{w.room.pk}/messages/"),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
    "post message": (
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{w.room.pk}/messages/",
            {"text": "hello"},
            content_type="application/json",
        ),
        {"member", "moderator", "owner"},
        201,
    ),
    "edit own message": (
        lambda c, w, r: c.patch(
            f"/api/v1/rooms/{w.room.pk}/messages/{w.own_message.get(r, w.others_message).pk}/",
            {"text": "edited"},
            content_type="application/json",
        ),
        {"member", "moderator", "owner"},
        200,
    ),
    "delete another's message": (
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/messages/{w.others_message.pk}/"),
        {"moderator", "owner"},
        204,
    ),
    "react": (
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{w.room.pk}/messages/{w.others_message.pk}/reactions/",
            {"emoji": "+1"},
            content_type="application/json",
        ),
        {"member", "moderator", "owner"},
        200,
    ),
    "read marker": (
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{w.room.pk}/read-marker/",
            {"message_id": w.others_message.pk},
            content_type="application/json",
        ),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
}


def expected_denial(role: str) -> set[int]:
    if role == "anonymous":
        return {401, 403}
    if role == "unverified":
        return {403}
    if role in ("non_member", "compliance_officer"):
        return {404, 403}
    return {403}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", list(ROUTES))
def test_access_matrix(
    route: str, role: str, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given a room with one person of each role
    world = build_world()
    call, allowed, success = ROUTES[route]
    client = client_for(role, world)
    before = state()

    # when the role calls the route (broadcasts go out on commit: collect what it queued)
    with django_capture_on_commit_callbacks() as queued:
        response = call(client, world, role)

    # then allowed roles succeed, and everyone else is refused without any effect
    if role in allowed:
        assert response.status_code == success, response.content
    else:
        assert response.status_code in expected_denial(role), (
            response.status_code,
            response.content,
        )
        assert state() == before
        assert queued == []  # nothing broadcast
        if role in ("non_member", "compliance_officer"):
            # a room you cannot view does not exist for you
            assert response.status_code == 404 or route in ("create room", "list rooms")
        assert b"Traceback" not in response.content


def test_the_room_list_never_shows_rooms_you_cannot_view() -> None:
    world = build_world()
    other = make_room(owner=make_user(), name="Secret M&A")

    response = client_for("member", world).get("/api/v1/rooms/")

    names = [room["name"] for room in response.json()]
    assert "Rates desk" in names
    assert other.name not in names


def test_a_room_admin_creates_a_room_through_the_api() -> None:
    admin = grant_role(make_user(), "room_admin")
    client = Client()
    sign_in_client(client, admin, verified=True)

    response = client.post(
        "/api/v1/rooms/create/",
        {"name": "Credit desk", "topic": "IG"},
        content_type="application/json",
    )

    assert response.status_code == 201
    room = Room.objects.get(pk=response.json()["id"])
    assert room.memberships.get().user_id == admin.pk


def test_messages_page_newest_first_with_cursors() -> None:
    world = build_world()
    for i in range(5):
        message_post(sender=world.owner, room=world.room, text=f"n{i}")
    client = client_for("member", world)

    first = client.get(f"/api/v1/rooms/{world.room.pk}/messages/?limit=3").json()
    older = client.get(
        f"/api/v1/rooms/{world.room.pk}/messages/?limit=3&before={first['next_before']}"
    ).json()
    newer = client.get(
        f"/api/v1/rooms/{world.room.pk}/messages/?after={older['results'][0]['id']}"
    ).json()

    assert [m["text"] for m in first["results"]] == ["n4", "n3", "n2"]
    assert [m["text"] for m in older["results"]] == ["n1", "n0", "by owner, for others"]
    assert [m["text"] for m in newer["results"]] == ["n4", "n3", "n2"]


@pytest.mark.parametrize(
    ("payload", "query"),
    [
        ({"text": ""}, ""),
        ({"text": "x" * (16 * 1024 + 1)}, ""),
        ({"text": 12}, ""),
        ({}, ""),
        ({"text": "ok", "parent_id": 999999}, ""),
    ],
)
def test_bad_messages_get_a_clear_400_and_store_nothing(
    payload: dict[str, Any], query: str
) -> None:
    world = build_world()
    before = state()

    response = client_for("member", world).post(
        f"/api/v1/rooms/{world.room.pk}/messages/{query}", payload, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()
    assert state() == before


@pytest.mark.parametrize(
    "query", ["?before=abc", "?after=-5", "?limit=1000", "?before=5&after=2", "?limit=0"]
)
def test_bad_cursors_get_a_clear_400(query: str) -> None:
    world = build_world()

    response = client_for("member", world).get(f"/api/v1/rooms/{world.room.pk}/messages/{query}")

    assert response.status_code == 400


def test_unknown_room_ids_answer_404_like_rooms_you_cannot_see() -> None:
    world = build_world()
    client = client_for("member", world)

    assert client.get("/api/v1/rooms/999999/").status_code == 404
    assert client.get("/api/v1/rooms/999999/messages/").status_code == 404


def test_the_openapi_schema_documents_the_room_api() -> None:
    world = build_world()

    response = client_for("member", world).get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    body = response.content.decode()
    for path in ("/api/v1/rooms/", "/api/v1/rooms/{room_id}/messages/", "/api/v1/direct/"):
        assert path in body
