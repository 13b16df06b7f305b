"""Browsing, joining and muting through the API and the portal: the same services, and
rooms one may not know of answered exactly as rooms that do not exist."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from rooms.models import Membership, Room
from rooms.services import barrier_create, direct_conversation_create, room_archive
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

LISTED = Room.Visibility.LISTED


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def client_of(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def wall(left: User, right: User) -> None:
    admin = User.objects.get(pk=grant_role(make_user(), Role.SECURITY_ADMIN).pk)
    research, _ = Group.objects.get_or_create(name="Research")
    trading, _ = Group.objects.get_or_create(name="Trading")
    left.groups.add(research)
    right.groups.add(trading)
    barrier_create(
        actor=User.objects.get(pk=admin.pk), group_a=research, group_b=trading, reason="MAR"
    )


def members(room: Room) -> set[int]:
    return set(Membership.objects.filter(room=room).values_list("user_id", flat=True))


def as_unknown(body: dict[str, Any]) -> dict[str, Any]:
    """A problem without what differs per request (its path and request id)."""
    return {k: v for k, v in body.items() if k not in ("instance", "request_id")}


# --- API ------------------------------------------------------------------------------------
def test_the_api_lists_the_joinable_rooms_a_page_at_a_time() -> None:
    owner, colleague = make_room_admin(), make_user()
    rooms = [make_room(owner=owner, name=f"Ideas {i}", visibility=LISTED) for i in range(3)]
    make_room(owner=owner, name="Private")
    client = client_of(colleague)

    first = client.get("/api/v1/rooms/joinable/?limit=2").json()
    rest = client.get(f"/api/v1/rooms/joinable/?limit=2&after={first['next_after']}").json()

    assert [r["id"] for r in first["results"]] == [rooms[0].pk, rooms[1].pk]
    assert first["has_more"] is True
    assert [r["id"] for r in rest["results"]] == [rooms[2].pk]
    assert first["results"][0] == {
        "id": rooms[0].pk,
        "name": "Ideas 0",
        "topic": "",
        "history_visible": False,
        "member_count": 1,
        "created_at": first["results"][0]["created_at"],
    }
    found = client.get("/api/v1/rooms/joinable/?q=ideas%202").json()["results"]
    assert [r["id"] for r in found] == [rooms[2].pk]
    assert client.get("/api/v1/rooms/joinable/?q=" + "x" * 101).status_code == 400


def test_the_api_hides_rooms_behind_a_wall() -> None:
    owner, trader, researcher = make_room_admin(), make_user(), make_user()
    wall(researcher, trader)
    make_room(owner=owner, name="Trading floor", members=(trader,), visibility=LISTED)

    listed = client_of(researcher).get("/api/v1/rooms/joinable/").json()

    assert listed["results"] == []


def test_joining_through_the_api_answers_the_room_as_the_joiner_now_sees_it() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, name="Macro ideas", visibility=LISTED)

    response = client_of(colleague).post(f"/api/v1/rooms/{room.pk}/join/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["visibility"], body["mute"], body["unread"]) == (
        room.pk, "listed", "off", 0,
    )  # fmt: skip
    assert colleague.pk in members(room)


@pytest.mark.parametrize("who", ["stranger", "compliance officer", "behind a wall"])
def test_a_room_one_may_not_join_is_answered_as_a_room_that_does_not_exist(who: str) -> None:
    # given a listed room with a trader, a private room, and someone who may not join
    owner, trader, person = make_room_admin(), make_user(), make_user()
    listed = make_room(owner=owner, members=(trader,), visibility=LISTED)
    private = make_room(owner=owner, name="Secret")
    direct = direct_conversation_create(actor=owner, participants=[trader])
    if who == "compliance officer":
        grant_role(person, Role.COMPLIANCE_OFFICER)
    elif who == "behind a wall":
        wall(person, trader)
    target = private if who == "stranger" else listed
    client = client_of(person)
    missing = max(Room.objects.values_list("pk", flat=True)) + 1
    added_before = AuditEvent.objects.filter(action="room.member.added").count()

    # when they ask to join it (and a direct conversation, and an id naming no room)
    refused = client.post(f"/api/v1/rooms/{target.pk}/join/")
    refused_direct = client.post(f"/api/v1/rooms/{direct.pk}/join/")
    unknown = client.post(f"/api/v1/rooms/{missing}/join/")

    # then each answer is the unknown room's, nothing is written, and it is on the record
    assert refused.status_code == refused_direct.status_code == unknown.status_code == 404
    assert as_unknown(refused.json()) == as_unknown(unknown.json())
    assert as_unknown(refused_direct.json()) == as_unknown(unknown.json())
    assert person.pk not in members(target) | members(direct)
    assert AuditEvent.objects.filter(action="room.member.added").count() == added_before
    recorded = AuditEvent.objects.filter(
        actor_id=person.pk, action__in=["room.access.denied", "barrier.refused"]
    )
    assert recorded.count() == 2


def test_an_archived_listed_room_is_refused_with_a_reason() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED)
    room_archive(actor=owner, room=room)

    response = client_of(colleague).post(f"/api/v1/rooms/{room.pk}/join/")

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert colleague.pk not in members(room)


def test_a_room_is_created_listed_and_made_private_through_the_api() -> None:
    admin = grant_role(make_user(), Role.ROOM_ADMIN)
    client = client_of(admin)

    created = client.post(
        "/api/v1/rooms/create/", {"name": "Ideas", "visibility": "listed"},
        content_type="application/json",
    )  # fmt: skip
    room_id = created.json()["id"]
    changed = client.patch(
        f"/api/v1/rooms/{room_id}/", {"visibility": "private"}, content_type="application/json"
    )
    wrong = client.patch(
        f"/api/v1/rooms/{room_id}/", {"visibility": "public"}, content_type="application/json"
    )

    assert created.status_code == 201
    assert created.json()["visibility"] == "listed"
    assert changed.json()["visibility"] == "private"
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["pointer"] == "#/visibility"
    assert Room.objects.get(pk=room_id).visibility == "private"


def test_a_direct_conversation_is_not_listed_through_the_api() -> None:
    alice, bob = make_user(), make_user()
    direct = direct_conversation_create(actor=alice, participants=[bob])

    response = client_of(alice).patch(
        f"/api/v1/rooms/{direct.pk}/", {"visibility": "listed"}, content_type="application/json"
    )

    assert response.status_code == 400
    assert [e["pointer"] for e in response.json()["errors"]] == ["#/visibility"]
    assert Room.objects.get(pk=direct.pk).visibility == "private"
    assert not AuditEvent.objects.filter(action="room.updated").exists()


def test_a_member_mutes_a_room_through_the_api_and_the_list_says_so() -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))
    client = client_of(member)

    muted = client.post(
        f"/api/v1/rooms/{room.pk}/mute/", {"mute": "messages"}, content_type="application/json"
    )
    bad = client.post(
        f"/api/v1/rooms/{room.pk}/mute/", {"mute": "loud"}, content_type="application/json"
    )
    listed = client.get("/api/v1/rooms/").json()["results"]

    assert muted.status_code == 200
    assert muted.json()["mute"] == "messages"
    assert bad.status_code == 400
    assert [r["mute"] for r in listed if r["id"] == room.pk] == ["messages"]
    assert Membership.objects.get(room=room, user=member).mute == "messages"


# --- the portal -----------------------------------------------------------------------------
def test_the_chat_links_to_browsing_and_the_page_offers_joinable_rooms_only() -> None:
    owner, trader, researcher = make_room_admin(), make_user(), make_user()
    wall(researcher, trader)
    make_room(owner=owner, name="Trading floor", members=(trader,), visibility=LISTED)
    make_room(owner=owner, name="Lunch plans", visibility=LISTED)
    make_room(owner=owner, name="Secret M&A")
    client = client_of(researcher)

    chat = client.get("/rooms/").content.decode()
    page = client.get("/rooms/browse/")

    assert 'href="/rooms/browse/"' in chat
    assert page.status_code == 200
    html = page.content.decode()
    assert "Lunch plans" in html
    assert "Trading floor" not in html
    assert "Secret M&amp;A" not in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "no-store" in page["Cache-Control"]


def test_joining_from_the_portal_opens_the_room() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, name="Macro ideas", visibility=LISTED)
    client = client_of(colleague)

    response = client.post(f"/rooms/{room.pk}/join/", follow=True)

    assert response.redirect_chain[-1][0] == f"/rooms/?room={room.pk}"
    assert "You joined “Macro ideas”." in response.content.decode()
    assert colleague.pk in members(room)
    assert client.get(f"/rooms/{room.pk}/join/").status_code == 405


def test_the_portal_answers_a_room_one_may_not_join_as_a_missing_one() -> None:
    owner = make_room_admin()
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    listed = make_room(owner=owner, visibility=LISTED)
    client = client_of(officer)

    refused = client.post(f"/rooms/{listed.pk}/join/")
    unknown = client.post(f"/rooms/{listed.pk + 1000}/join/")
    browse = client.get("/rooms/browse/").content.decode()

    assert refused.status_code == unknown.status_code == 404
    assert officer.pk not in members(listed)
    assert "joins no room" in browse
    assert f"/rooms/{listed.pk}/join/" not in browse


def test_an_archived_room_joined_from_the_portal_is_explained() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED)
    room_archive(actor=owner, room=room)

    response = client_of(colleague).post(f"/rooms/{room.pk}/join/", follow=True)

    assert response.redirect_chain[-1][0] == "/rooms/browse/"
    assert "archived" in response.content.decode()
    assert colleague.pk not in members(room)


def test_an_owner_lists_a_room_from_its_settings_and_a_direct_conversation_has_no_box() -> None:
    owner, bob = make_room_admin(), make_user()
    room = make_room(owner=owner, name="Ideas")
    direct = direct_conversation_create(actor=owner, participants=[bob])
    client = client_of(owner)
    form = {"name": "Ideas", "topic": "", "listed": "on"}

    client.post(f"/rooms/{room.pk}/settings/", form)
    client.post(f"/rooms/{direct.pk}/settings/", {**form, "name": direct.name})

    assert Room.objects.get(pk=room.pk).visibility == "listed"
    assert Room.objects.get(pk=direct.pk).visibility == "private"
    assert 'name="listed"' in client.get(f"/rooms/?room={room.pk}").content.decode()
    assert 'name="listed"' not in client.get(f"/rooms/?room={direct.pk}").content.decode()


def test_a_room_admin_creates_a_listed_room_from_the_portal() -> None:
    admin = make_room_admin()

    client_of(admin).post("/rooms/new/", {"name": "Ideas", "topic": "", "listed": "on"})

    assert Room.objects.get(name="Ideas").visibility == "listed"


def test_a_member_mutes_the_room_from_its_header() -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,), name="Rates desk")
    client = client_of(member)

    response = client.post(f"/rooms/{room.pk}/mute/", {"mute": "all"}, follow=True)
    bad = client.post(f"/rooms/{room.pk}/mute/", {"mute": "loud"}, follow=True)

    assert "Room muted, mentions of you too." in response.content.decode()
    assert Membership.objects.get(room=room, user=member).mute == "all"
    page = client.get(f"/rooms/?room={room.pk}").content.decode()
    assert f'data-room-id="{room.pk}" data-kind="channel" data-mute="all"' in page
    assert '<option value="all" selected>' in page
    assert "Notifications" in bad.content.decode()  # the form's error names the field
    assert AuditEvent.objects.filter(action="room.member.mute_changed").count() == 1


def test_someone_outside_the_room_cannot_mute_it() -> None:
    owner, stranger = make_room_admin(), make_user()
    room = make_room(owner=owner)

    response = client_of(stranger).post(f"/rooms/{room.pk}/mute/", {"mute": "all"})

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="room.member.mute_changed").exists()
