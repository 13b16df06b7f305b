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
from tests.support.commit_callbacks import broadcasts

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
    "message.edited", "message.deleted", "room.unarchived", "room.member.mute_changed",
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
        sorted(Membership.objects.values_list("user_id", "mute")),
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
    "get message": (
        lambda c, w, r: c.get(f"/api/v1/rooms/{w.room.pk}/messages/{w.others_message.pk}/"),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
    "people": (lambda c, w, r: c.get("/api/v1/people/?q=o"), set(ROLES[2:]), 200),
    "joinable rooms": (lambda c, w, r: c.get("/api/v1/rooms/joinable/"), set(ROLES[2:]), 200),
    # a private room: its members are answered their room, nobody else learns of it
    "join room": (
        lambda c, w, r: c.post(f"/api/v1/rooms/{w.room.pk}/join/"),
        {"read_only", "member", "moderator", "owner"},
        200,
    ),
    "mute room": (
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{w.room.pk}/mute/", {"mute": "all"}, content_type="application/json"
        ),
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
            {"emoji": "👍"},
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


DENIAL_CODES = {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}


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

    # then every answer is never stored, and every refusal is a problem document
    assert response["Cache-Control"] == "no-store"
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
        body = response.json()
        expected = "second_factor_required" if role == "unverified" else None
        assert body["status"] == response.status_code
        assert body["code"] == (expected or DENIAL_CODES[response.status_code])
    # and allowed roles succeed, and everyone else is refused without any effect
    if role in allowed:
        assert response.status_code == success, response.content
    else:
        assert response.status_code in expected_denial(role), (
            response.status_code,
            response.content,
        )
        assert state() == before
        assert broadcasts(queued) == []  # nothing broadcast
        if role in ("non_member", "compliance_officer"):
            # a room you cannot view does not exist for you
            assert response.status_code == 404 or route in (
                "create room", "list rooms", "people", "joinable rooms",
            )  # fmt: skip
        assert b"Traceback" not in response.content


def test_the_room_list_never_shows_rooms_you_cannot_view() -> None:
    world = build_world()
    other = make_room(owner=make_user(), name="Secret M&A")

    response = client_for("member", world).get("/api/v1/rooms/")

    names = [room["name"] for room in response.json()["results"]]
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


def test_messages_after_a_cursor_page_forward_without_skipping() -> None:
    # given a room with seven more messages
    world = build_world()
    posted = [message_post(sender=world.owner, room=world.room, text=f"n{i}") for i in range(7)]
    client = client_for("member", world)
    url = f"/api/v1/rooms/{world.room.pk}/messages/"

    # when a client that holds the first one follows next_after two at a time
    seen: list[str] = []
    cursor: int | None = posted[0].pk
    pages = 0
    while cursor is not None:
        page = client.get(f"{url}?after={cursor}&limit=2").json()
        # then each page is newest first, and its forward cursor is its newest message
        ids = [m["id"] for m in page["results"]]
        assert ids == sorted(ids, reverse=True)
        assert page["next_after"] == (ids[0] if page["has_more"] else None)
        assert page["next_before"] == ids[-1]  # older messages exist on this side
        seen += reversed([m["text"] for m in page["results"]])
        cursor = page["next_after"]
        pages += 1

    # and every message after the cursor came exactly once, in order
    assert seen == [f"n{i}" for i in range(1, 7)]
    assert pages == 3


def test_a_single_message_is_served_under_the_list_rules() -> None:
    # given a message, a deleted one, and a member who joined a room hiding history late
    world = build_world()
    from rooms.services import membership_add, message_delete

    message = world.others_message
    gone = message_post(sender=world.owner, room=world.room, text="soon gone")
    message_delete(actor=world.owner, message=gone)
    url = f"/api/v1/rooms/{world.room.pk}/messages/"

    # when members ask for them one by one
    found = client_for("member", world).get(f"{url}{message.pk}/")
    deleted = client_for("member", world).get(f"{url}{gone.pk}/")
    elsewhere = make_room(owner=world.owner, name="Other")
    wrong_room = client_for("owner", world).get(
        f"/api/v1/rooms/{elsewhere.pk}/messages/{message.pk}/"
    )
    hidden = make_room(owner=world.owner, name="Hidden past", history_visible=False)
    early = message_post(sender=world.owner, room=hidden, text="before you came")
    membership_add(actor=world.owner, room=hidden, user=world.users["member"])
    too_early = client_for("member", world).get(f"/api/v1/rooms/{hidden.pk}/messages/{early.pk}/")

    # then the message is served as the list serves it, and the others are not found
    assert found.status_code == 200
    listed = client_for("member", world).get(url).json()["results"]
    assert found.json() == next(m for m in listed if m["id"] == message.pk)
    assert found["Cache-Control"] == "no-store"
    for refused in (deleted, wrong_room, too_early):
        assert refused.status_code == 404
        assert refused.json()["code"] == "not_found"


def test_the_people_directory_lists_only_reachable_people() -> None:
    # given colleagues, a compliance officer, someone behind a barrier, an inactive one
    from django.contrib.auth.models import Group

    from rooms.models import InformationBarrier

    world = build_world()
    walled = make_user(username="walled-off", first_name="Wally")
    inactive = make_user(username="left-bank")
    inactive.is_active = False
    inactive.save()
    research = Group.objects.create(name="research")
    sales = Group.objects.create(name="sales")
    world.users["member"].groups.add(research)
    walled.groups.add(sales)
    InformationBarrier.objects.create(group_a=research, group_b=sales, created_by=world.owner)
    client = client_for("member", world)

    # when the member pages through the directory two at a time
    people: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = client.get(f"/api/v1/people/?limit=2{cursor}").json()
        people += page["results"]
        if not page["has_more"]:
            break
        cursor = f"&after={page['next_after']}"
    searched = client.get("/api/v1/people/?q=OWN").json()["results"]

    # then reachable active people are listed by id with their names, nobody else
    names = {p["username"] for p in people}
    assert {"owner", "moderator", "read_only", "bystander", "outsider"} <= names
    assert names.isdisjoint({"member", "compliance_officer", "walled-off", "left-bank"})
    assert [p["id"] for p in people] == sorted(p["id"] for p in people)
    assert set(people[0]) == {"id", "username", "display_name"}
    assert [p["username"] for p in searched] == ["owner"]


def test_people_queries_and_cursors_are_checked() -> None:
    world = build_world()
    client = client_for("member", world)

    too_long = client.get("/api/v1/people/?q=" + "x" * 101)
    over = client.get("/api/v1/people/?limit=51")

    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["parameter"] == "q"
    assert over.status_code == 400
    assert over.json()["errors"][0]["parameter"] == "limit"


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
    ("query", "parameter"),
    [
        ("?before=abc", "before"),
        ("?after=-5", "after"),
        ("?limit=1000", "limit"),
        ("?before=5&after=2", "after"),
        ("?limit=0", "limit"),
        ("?before=&limit=", "before"),
        ("?limit=", "limit"),
        ("?after=1.5", "after"),
    ],
)
def test_bad_cursors_get_a_clear_400(query: str, parameter: str) -> None:
    world = build_world()

    response = client_for("member", world).get(f"/api/v1/rooms/{world.room.pk}/messages/{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["parameter"] == parameter


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


def openapi(client: Client) -> dict[str, Any]:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def test_every_operation_documents_its_problem_responses() -> None:
    schema = openapi(client_for("member", build_world()))

    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert {"type", "title", "status", "detail", "instance", "code", "request_id"} <= set(
        schema["components"]["schemas"]["Problem"]["required"]
    )
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # 406 for an Accept the answer cannot meet (`Accept: application/xml`), 413
            # for a body over the limit, sent to any operation: both answered by the
            # server, so both documented (they were not)
            for code in ("400", "401", "403", "404", "405", "406", "413", "429"):
                if method == "head":  # an answer to HEAD has no body (RFC 9110 §9.3.2)
                    assert code in responses, (method, path, code)
                    assert "content" not in responses[code], (method, path, code)
                    continue
                assert responses[code]["content"] == problem, (method, path, code)
            if "requestBody" in operation:
                assert responses["415"]["content"] == problem
            assert "Retry-After" in responses["429"]["headers"]
            assert "WWW-Authenticate" in responses["401"]["headers"]


def test_every_room_answer_carries_every_field_the_schema_requires() -> None:
    # given the fields the schema requires of a room
    world = build_world()
    client = client_for("owner", world)
    required = set(openapi(client)["components"]["schemas"]["RoomOutput"]["required"])
    assert "unread" in required
    message_post(sender=world.users["member"], room=world.room, text="unread by the owner")
    room = world.room.pk
    other = world.users["member"].pk

    # when each operation answering a room is called
    answers = {
        "retrieve": client.get(f"/api/v1/rooms/{room}/"),
        "update": client.patch(
            f"/api/v1/rooms/{room}/", {"topic": "t"}, content_type="application/json"
        ),
        "archive": client.post(f"/api/v1/rooms/{room}/archive/"),
        "unarchive": client.post(f"/api/v1/rooms/{room}/unarchive/"),
        "create": client.post(
            "/api/v1/rooms/create/", {"name": "New"}, content_type="application/json"
        ),
        "direct": client.post(
            "/api/v1/direct/", {"participants": [other]}, content_type="application/json"
        ),
        "list": client.get("/api/v1/rooms/"),
    }

    # then every answer has every required field, the unread count as the list counts it
    for name, answer in answers.items():
        assert answer.status_code in {200, 201}, (name, answer.content)
        rooms = answer.json()["results"] if name == "list" else [answer.json()]
        for body in rooms:
            assert required <= set(body), (name, required - set(body))
    listed = {r["id"]: r["unread"] for r in answers["list"].json()["results"]}
    assert answers["retrieve"].json()["unread"] == listed[room]
    assert answers["create"].json()["unread"] == 0


# --- The edges between roles -------------------------------------------------------
# Each case: who calls, what, the status, and the reason the refusal is audited with
# (None: allowed). A refused case must leave everything as it was and broadcast nothing.


def _co_owner(world: World) -> User:
    from rooms.services import membership_role_change

    co_owner = world.bystander
    membership_role_change(actor=world.owner, room=world.room, member=co_owner, role="owner")
    return co_owner


def _archive(world: World) -> None:
    from rooms.services import room_archive

    room_archive(actor=world.owner, room=world.room)


def _compliance_member(world: World) -> User:
    # a member of the room first, made a compliance officer later
    grant_role(world.users["member"], "compliance_officer")
    return world.users["member"]


def _direct(world: World) -> Room:
    from rooms.services import direct_conversation_create

    return direct_conversation_create(
        actor=world.owner, participants=[world.users["member"], world.bystander]
    )


def _anonymous_row() -> User:
    from guardian.utils import get_anonymous_user

    anonymous: User = get_anonymous_user()
    return anonymous


def _json(method: str, url: str, data: dict[str, Any] | None = None) -> Call:
    def call(c: Client, w: World, r: str) -> Any:
        payload = _formatted(data or {}, w)
        return getattr(c, method)(url.format(w=w), payload, content_type="application/json")

    return call


Setup = Callable[[World], Any]
# name -> (setup, role calling, call, status, refusal reason or None)
EDGES: dict[str, tuple[Setup, str, Call, int, str | None]] = {
    "a moderator demotes the only owner": (
        lambda w: None,
        "moderator",
        _json("patch", "/api/v1/rooms/{w.room.pk}/members/{w.owner.pk}/", {"role": "member"}),
        403,
        "owner role",
    ),
    "a moderator removes a co-owner": (
        _co_owner,
        "moderator",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.bystander.pk}/"),
        403,
        "owner role",
    ),
    "a moderator makes a member a moderator": (
        lambda w: None,
        "moderator",
        _json(
            "patch",
            "/api/v1/rooms/{w.room.pk}/members/{w.users[member].pk}/",
            {"role": "moderator"},
        ),
        403,
        "moderator role",
    ),
    "a moderator adds someone as a moderator": (
        lambda w: None,
        "moderator",
        _json(
            "post",
            "/api/v1/rooms/{w.room.pk}/members/",
            {"user_id": "{w.outsider.pk}", "role": "moderator"},
        ),
        403,
        "moderator role",
    ),
    "a moderator adds someone as an owner": (
        lambda w: None,
        "moderator",
        _json(
            "post",
            "/api/v1/rooms/{w.room.pk}/members/",
            {"user_id": "{w.outsider.pk}", "role": "owner"},
        ),
        403,
        "owner role",
    ),
    "an owner adds someone as a moderator": (
        lambda w: None,
        "owner",
        _json(
            "post",
            "/api/v1/rooms/{w.room.pk}/members/",
            {"user_id": "{w.outsider.pk}", "role": "moderator"},
        ),
        201,
        None,
    ),
    "the only owner leaves": (
        lambda w: None,
        "owner",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.owner.pk}/"),
        403,
        "last owner",
    ),
    "a co-owner demotes the other owner": (
        _co_owner,
        "owner",
        _json("patch", "/api/v1/rooms/{w.room.pk}/members/{w.bystander.pk}/", {"role": "member"}),
        200,
        None,
    ),
    "an owner demotes a moderator": (
        lambda w: None,
        "owner",
        _json(
            "patch",
            "/api/v1/rooms/{w.room.pk}/members/{w.users[moderator].pk}/",
            {"role": "member"},
        ),
        200,
        None,
    ),
    "an owner changes a role in an archived room": (
        _archive,
        "owner",
        _json(
            "patch",
            "/api/v1/rooms/{w.room.pk}/members/{w.users[member].pk}/",
            {"role": "read_only"},
        ),
        403,
        "archived",
    ),
    "an owner removes a member of an archived room": (
        _archive,
        "owner",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.bystander.pk}/"),
        403,
        "archived",
    ),
    "an owner adds to an archived room": (
        _archive,
        "owner",
        _json("post", "/api/v1/rooms/{w.room.pk}/members/", {"user_id": "{w.outsider.pk}"}),
        403,
        "archived",
    ),
    "a member leaves an archived room": (
        _archive,
        "member",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.users['member'].pk}/"),
        403,
        "archived",
    ),
    "a member posts in an archived room": (
        _archive,
        "member",
        _json("post", "/api/v1/rooms/{w.room.pk}/messages/", {"text": "still here?"}),
        403,
        "archived",
    ),
    "a moderator unarchives": (
        _archive,
        "moderator",
        lambda c, w, r: c.post(f"/api/v1/rooms/{w.room.pk}/unarchive/"),
        403,
        "unarchive",
    ),
    "the owner unarchives": (
        _archive,
        "owner",
        lambda c, w, r: c.post(f"/api/v1/rooms/{w.room.pk}/unarchive/"),
        200,
        None,
    ),
    "an owner adds a compliance officer": (
        lambda w: None,
        "owner",
        _json(
            "post",
            "/api/v1/rooms/{w.room.pk}/members/",
            {"user_id": "{w.users[compliance_officer].pk}", "role": "read_only"},
        ),
        400,  # as an id that names nobody: the answer says nothing of anyone's role
        "read-only role",
    ),
    "an owner starts a direct conversation with a compliance officer": (
        lambda w: None,
        "owner",
        _json("post", "/api/v1/direct/", {"participants": ["{w.users[compliance_officer].pk}"]}),
        400,  # as an id that names nobody: the answer says nothing of anyone's role
        "read-only role",
    ),
    "a compliance officer starts a direct conversation": (
        lambda w: None,
        "compliance_officer",
        _json("post", "/api/v1/direct/", {"participants": ["{w.outsider.pk}"]}),
        403,
        "read-only role",
    ),
    "a compliance officer who is a room admin creates a room": (
        lambda w: grant_role(w.users["compliance_officer"], "room_admin"),
        "compliance_officer",
        _json("post", "/api/v1/rooms/create/", {"name": "Side desk"}),
        403,
        "read-only role",
    ),
    "a member made a compliance officer posts": (
        _compliance_member,
        "member",
        _json("post", "/api/v1/rooms/{w.room.pk}/messages/", {"text": "hello"}),
        403,
        "missing post_message",
    ),
    "an owner made a compliance officer adds a member": (
        lambda w: grant_role(w.owner, "compliance_officer"),
        "owner",
        _json("post", "/api/v1/rooms/{w.room.pk}/members/", {"user_id": "{w.outsider.pk}"}),
        403,
        "missing manage_members",
    ),
    "a moderator made a compliance officer removes a member": (
        lambda w: grant_role(w.users["moderator"], "compliance_officer"),
        "moderator",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.bystander.pk}/"),
        403,
        "missing manage_members",
    ),
    "a member adds an id that names nobody": (
        lambda w: None,
        "member",
        _json("post", "/api/v1/rooms/{w.room.pk}/members/", {"user_id": 99999}),
        403,
        "missing manage_members",
    ),
    "a member adds an id that names someone": (
        lambda w: None,
        "member",
        _json("post", "/api/v1/rooms/{w.room.pk}/members/", {"user_id": "{w.outsider.pk}"}),
        403,
        "missing manage_members",
    ),
    "a member removes an id that names nobody": (
        lambda w: None,
        "member",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/99999/"),
        403,
        "missing manage_members",
    ),
    "a member removes an id that names someone": (
        lambda w: None,
        "member",
        lambda c, w, r: c.delete(f"/api/v1/rooms/{w.room.pk}/members/{w.outsider.pk}/"),
        403,
        "missing manage_members",
    ),
    "a member re-roles an id that names nobody": (
        lambda w: None,
        "member",
        _json("patch", "/api/v1/rooms/{w.room.pk}/members/99999/", {"role": "member"}),
        403,
        "missing manage_members",
    ),
    "the owner adds to a direct conversation": (
        _direct,
        "owner",
        lambda c, w, r: c.post(
            f"/api/v1/rooms/{Room.objects.get(kind='direct').pk}/members/",
            {"user_id": w.outsider.pk},
            content_type="application/json",
        ),
        403,
        "direct conversation",
    ),
    "the owner changes a role in a direct conversation": (
        _direct,
        "owner",
        lambda c, w, r: c.patch(
            f"/api/v1/rooms/{Room.objects.get(kind='direct').pk}/members/{w.bystander.pk}/",
            {"role": "read_only"},
            content_type="application/json",
        ),
        403,
        "direct conversation",
    ),
    "a member leaves a direct conversation": (
        _direct,
        "member",
        lambda c, w, r: c.delete(
            f"/api/v1/rooms/{Room.objects.get(kind='direct').pk}/members/{w.users['member'].pk}/"
        ),
        403,
        "direct conversation",
    ),
    "the owner removes someone from a direct conversation": (
        _direct,
        "owner",
        lambda c, w, r: c.delete(
            f"/api/v1/rooms/{Room.objects.get(kind='direct').pk}/members/{w.bystander.pk}/"
        ),
        403,
        "direct conversation",
    ),
}


def _formatted(data: Any, world: World) -> Any:
    """Fill ``{w...}`` placeholders of a JSON payload (ids known only once built)."""
    if isinstance(data, dict):
        return {k: _formatted(v, world) for k, v in data.items()}
    if isinstance(data, list):
        return [_formatted(v, world) for v in data]
    if isinstance(data, str) and data.startswith("{w."):
        return int(data.format(w=world))
    return data


@pytest.mark.parametrize("edge", list(EDGES))
def test_role_edges(edge: str, django_capture_on_commit_callbacks: Callable[..., Any]) -> None:
    # given the room, set up for the edge
    world = build_world()
    setup, role, call, status_code, reason = EDGES[edge]
    setup(world)
    client = client_for(role, world)
    before = state()
    denied_before = AuditEvent.objects.filter(action="room.access.denied").count()

    # when the role makes the call
    with django_capture_on_commit_callbacks() as queued:
        response = call(client, world, role)

    # then it succeeds, or it is refused, audited once with its reason, and changes nothing
    assert response.status_code == status_code, response.content
    if reason is None:
        assert state() != before
        return
    denied = AuditEvent.objects.filter(action="room.access.denied").order_by("seq")
    assert denied.count() == denied_before + 1
    assert denied.last().extra["reason"] == reason  # type: ignore[union-attr]
    assert state() == before
    assert broadcasts(queued) == []


@pytest.mark.parametrize("who", ["outsider", "nobody"])
def test_a_role_change_for_someone_not_in_the_room_is_not_found(who: str) -> None:
    # given the owner, and someone not in the room (or an id naming nobody); the API's
    # contract run found this answered 400 although the path names no membership
    world = build_world()
    client = client_for("owner", world)
    user_id = world.outsider.pk if who == "outsider" else 999_999
    before = state()
    audited = AuditEvent.objects.count()

    # when the owner gives them a role in the room
    response = client.patch(
        f"/api/v1/rooms/{world.room.pk}/members/{user_id}/",
        {"role": "moderator"},
        content_type="application/json",
    )

    # then it is a 404 problem, as for any path naming nothing, and nothing was written
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
    assert state() == before
    assert AuditEvent.objects.count() == audited


def test_adding_a_member_again_answers_their_membership_or_a_conflict() -> None:
    # given an owner, and a colleague already in the room as a member
    owner, colleague = make_user(username="owner"), make_user(username="colleague")
    room = make_room(owner=owner, members=(colleague,))
    client = Client()
    sign_in_client(client, owner, verified=True)
    path = f"/api/v1/rooms/{room.pk}/members/"
    events_before = AuditEvent.objects.count()

    # when the owner adds them again under the same role, then under another
    same = client.post(path, {"user_id": colleague.pk}, content_type="application/json")
    other = client.post(
        path, {"user_id": colleague.pk, "role": "read_only"}, content_type="application/json"
    )

    # then the first is their membership as it is (200, not "created"), the second a
    # conflict naming the role they hold; nothing was written or recorded
    assert same.status_code == 200, same.content
    assert same.json()["role"] == "member"
    assert other.status_code == 409, other.content
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["code"] == "already_member"
    assert "as member" in other.json()["detail"]
    assert Membership.objects.get(room=room, user=colleague).role == "member"
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize("path", ["/api/v1/people/", "/api/v1/rooms/joinable/"])
@pytest.mark.parametrize("query", ["%00", "ann%00", "x" * 101, "a&q=b"])
def test_a_search_the_schema_refuses_is_a_400_naming_q(path: str, query: str) -> None:
    # (a NUL character reached PostgreSQL, which cannot compare text holding one: a 500)
    world = build_world()
    client = client_for("member", world)

    response = client.get(f"{path}?q={query}")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["parameter"] == "q"
    expected = "max_length" if query.startswith("x") else "null_characters_not_allowed"
    assert error["code"] == ("repeated" if "&" in query else expected)


def test_a_direct_conversation_with_someone_behind_a_wall_is_answered_as_with_nobody() -> None:
    # given a member and someone an information barrier separates them from
    from django.contrib.auth.models import Group

    from rooms.models import InformationBarrier

    world = build_world()
    walled = make_user(username="walled-off")
    research, sales = Group.objects.create(name="research"), Group.objects.create(name="sales")
    world.users["member"].groups.add(research)
    walled.groups.add(sales)
    InformationBarrier.objects.create(group_a=research, group_b=sales, created_by=world.owner)
    client = client_for("member", world)
    before = state()

    # when they start a conversation with that person, and with an id naming nobody
    answers = [
        client.post("/api/v1/direct/", {"participants": [pk]}, content_type="application/json")
        for pk in (walled.pk, 999_999)
    ]

    # then both answers are alike, headers too: neither counts against the write budget
    # (its RateLimit fields told a person behind the wall from nobody), only against the
    # request budget every request counts against; and nothing is written
    walled_off, nobody = answers
    assert walled_off.status_code == nobody.status_code == 400
    assert walled_off.json()["errors"] == nobody.json()["errors"]
    headers = [{k.lower() for k in answer.headers} - {"x-request-id"} for answer in answers]
    assert headers[0] == headers[1]
    assert walled_off["RateLimit-Policy"] == nobody["RateLimit-Policy"]
    assert walled_off["RateLimit-Policy"].startswith('"api";')
    assert "room-create" not in walled_off["RateLimit-Policy"]
    assert state() == before


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_member_route_answers_an_id_naming_nobody_as_one_naming_a_non_member(
    method: str,
) -> None:
    # given an owner, and ids of people outside the room (one of them a compliance
    # officer, whom the directory never lists) and an id that names nobody
    world = build_world()
    client = client_for("owner", world)
    officer = world.users["compliance_officer"]
    ids = [world.outsider.pk, officer.pk, 999_999]
    before = state()

    # when the owner changes the role of, or removes, each
    def ask(user_id: int) -> Any:
        url = f"/api/v1/rooms/{world.room.pk}/members/{user_id}/"
        if method == "patch":
            return client.patch(url, {"role": "member"}, content_type="application/json")
        return client.delete(url)

    answers = [ask(user_id) for user_id in ids]

    # then every answer is alike, headers too: the RateLimit fields of a counted write
    # told an id naming a person (any, behind a wall too) from one naming nobody
    statuses = {answer.status_code for answer in answers}
    assert len(statuses) == 1, [a.status_code for a in answers]
    headers = [{k.lower() for k in a.headers} - {"x-request-id"} for a in answers]
    assert headers[1:] == headers[:-1]
    assert state() == before
