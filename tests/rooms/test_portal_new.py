"""New rooms and conversations from the portal: a new installation is usable without the API.

The rules live in the services (tested in tests/rooms/test_services.py and the role
edges); these tests hold the portal to them: it offers what the person may do, calls the
one service, and shows a refusal without writing anything.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.models import Membership, Room
from rooms.presence import presence_reset, presence_set
from rooms.selectors import people_reachable
from rooms.services import barrier_create
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room_admin
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

NEW_ROOM = "/rooms/new/"
NEW_CONVERSATION = "/rooms/conversations/new/"


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def _security_admin() -> User:
    return grant_role(make_user(), Role.SECURITY_ADMIN)


def _walled(left: User, right: User) -> User:
    """Put a barrier between ``left`` and ``right``; the security admin who made it."""
    research, _ = Group.objects.get_or_create(name="research")
    trading, _ = Group.objects.get_or_create(name="trading")
    left.groups.add(research)
    right.groups.add(trading)
    admin = _security_admin()
    barrier_create(actor=admin, group_a=research, group_b=trading, reason="MAR")
    return admin


def refused_as(actor: User, action: str) -> list[str]:
    """The reasons of the refusals of ``action`` recorded for ``actor``."""
    return [
        extra.get("reason")
        for extra in AuditEvent.objects.filter(action=action, actor_id=str(actor.pk))
        .order_by("seq")
        .values_list("extra", flat=True)
    ]


# --- Landing ------------------------------------------------------------------------------
def test_the_root_sends_a_signed_in_person_to_the_chat() -> None:
    response = verified_client(make_user()).get("/")

    assert response.status_code == 302
    assert response["Location"] == "/rooms/"


def test_the_root_sends_a_stranger_to_sign_in() -> None:
    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/sign-in/")


def test_an_empty_chat_offers_a_room_admin_both_ways_to_start() -> None:
    page = verified_client(make_room_admin()).get("/rooms/").content.decode()

    assert 'href="/rooms/new/"' in page
    assert 'href="/rooms/conversations/new/"' in page


def test_an_empty_chat_offers_a_member_only_a_conversation(settings: object) -> None:
    page = verified_client(make_user()).get("/rooms/").content.decode()

    assert 'href="/rooms/new/"' not in page
    assert 'href="/rooms/conversations/new/"' in page


def test_every_page_links_to_the_api_docs_and_staff_to_the_admin() -> None:
    admin_page = verified_client(_security_admin()).get("/accounts/").content.decode()
    member_page = verified_client(make_user()).get("/accounts/").content.decode()

    assert 'href="/admin/"' in admin_page
    assert 'href="/api/docs/"' in admin_page
    assert 'href="/admin/"' not in member_page
    assert 'href="/api/docs/"' in member_page


# --- New room -----------------------------------------------------------------------------
def test_a_room_admin_creates_a_room_from_the_portal() -> None:
    admin = make_room_admin()

    response = verified_client(admin).post(
        NEW_ROOM, {"name": "Rates desk", "topic": "EUR swaps", "history_visible": "on"}
    )

    room = Room.objects.get(name="Rates desk")
    assert response.status_code == 302
    assert response["Location"] == f"/rooms/?room={room.pk}"
    assert room.topic == "EUR swaps"
    assert room.history_visible is True
    assert Membership.objects.get(room=room).user == admin
    assert Membership.objects.get(room=room).role == Membership.Role.OWNER
    assert AuditEvent.objects.filter(
        action=AuditAction.ROOM_CREATED, target_id=str(room.pk)
    ).exists()


def test_a_member_without_the_role_is_refused_on_the_record_and_nothing_is_made() -> None:
    member = make_user()
    client = verified_client(member)

    page = client.get(NEW_ROOM)
    response = client.post(NEW_ROOM, {"name": "Shadow desk"})

    assert b"room administrator role" in page.content
    assert b"<form" not in page.content.split(b"<main>")[1]
    assert response.status_code == 403
    assert not Room.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ROOM_CREATED).exists()
    assert refused_as(member, AuditAction.ROOM_ACCESS_DENIED) == ["room creation"]


def test_a_compliance_officer_creates_no_room_from_the_portal() -> None:
    officer = grant_role(make_room_admin(), Role.COMPLIANCE_OFFICER)

    response = verified_client(officer).post(NEW_ROOM, {"name": "Review"})

    assert response.status_code == 403
    assert not Room.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 121])
def test_a_bad_room_name_is_shown_on_the_form_and_nothing_is_made(name: str) -> None:
    response = verified_client(make_room_admin()).post(NEW_ROOM, {"name": name})

    assert response.status_code == 400
    assert b'class="error"' in response.content
    assert not Room.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ROOM_CREATED).exists()


# --- New conversation ---------------------------------------------------------------------
def test_the_picker_offers_only_reachable_people() -> None:
    me = make_user(username="me")
    colleague = make_user(username="colleague", first_name="Ada", last_name="Byron")
    walled_off = make_user(username="walled")
    officer = grant_role(make_user(username="officer"), Role.COMPLIANCE_OFFICER)
    gone = make_user(username="gone", is_active=False)
    security_admin = _walled(me, walled_off)

    offered = people_reachable(user=me)
    page = verified_client(me).get(NEW_CONVERSATION).content.decode()

    assert offered == sorted([colleague, security_admin], key=lambda u: u.username)
    assert "Ada Byron" in page
    for hidden in (walled_off, officer, gone):
        assert f'value="{hidden.pk}"' not in page
    assert "AnonymousUser" not in page


def test_a_search_narrows_the_picker_and_keeps_what_was_picked() -> None:
    me = make_user()
    ada = make_user(username="ada")
    make_user(username="bob")
    grace = make_user(username="grace")

    response = verified_client(me).post(
        NEW_CONVERSATION, {"q": "gra", "do": "search", "participants": [str(ada.pk)]}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert f'value="{ada.pk}" checked' in page
    assert f'value="{grace.pk}"' in page
    assert "bob" not in page
    assert not Room.objects.exists()


def test_a_member_starts_a_group_conversation_from_the_portal() -> None:
    me, ada, grace = make_user(), make_user(), make_user()

    response = verified_client(me).post(
        NEW_CONVERSATION, {"do": "start", "participants": [str(ada.pk), str(grace.pk)]}
    )

    room = Room.objects.get(kind=Room.Kind.DIRECT)
    assert response.status_code == 302
    assert response["Location"] == f"/rooms/?room={room.pk}"
    assert set(room.memberships.values_list("user_id", flat=True)) == {me.pk, ada.pk, grace.pk}


def test_a_conversation_across_a_wall_is_refused_on_the_record_and_nothing_is_made() -> None:
    me, other = make_user(), make_user()
    _walled(me, other)

    response = verified_client(me).post(
        NEW_CONVERSATION, {"do": "start", "participants": [str(other.pk)]}
    )

    assert response.status_code == 400  # as for an id that names nobody
    assert b"cannot be reached" in response.content
    assert not Room.objects.exists()
    assert refused_as(me, AuditAction.BARRIER_REFUSED) == ["information-barrier"]


@pytest.mark.parametrize(
    "participants",
    [[], ["abc"], ["-1"], ["99999999"], ["1"], ["\uff11\uff12"], [str(n) for n in range(2, 12)]],
    ids=["none", "text", "negative", "nobody", "system-row", "full-width-digits", "too-many"],
)
def test_bad_picks_are_a_clear_error_and_nothing_is_made(participants: list[str]) -> None:
    me = make_user()

    response = verified_client(me).post(
        NEW_CONVERSATION, {"do": "start", "participants": participants}
    )

    assert response.status_code in (400, 403)
    assert b'role="alert"' in response.content
    assert not Room.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ROOM_CREATED).exists()


def test_a_compliance_officer_is_not_offered_a_conversation() -> None:
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    colleague = make_user()

    page = verified_client(officer).get(NEW_CONVERSATION)
    refused = verified_client(officer).post(
        NEW_CONVERSATION, {"do": "start", "participants": [str(colleague.pk)]}
    )

    assert b"read-only on chat" in page.content
    assert refused.status_code == 403
    assert not Room.objects.exists()


# --- The directory ------------------------------------------------------------------------
def test_the_directory_finds_colleagues_by_name_with_their_presence() -> None:
    me = make_user()
    ada = make_user(username="ada", first_name="Ada", last_name="Lovelace")
    make_user(username="bob")
    presence_set(user_id=ada.pk, socket_id="s1", state="online")

    try:
        response = verified_client(me).get("/rooms/people/", {"q": "love"})
    finally:
        presence_reset()

    page = response.content.decode()
    assert response.status_code == 200
    assert "Ada Lovelace" in page
    assert "@<bdi>ada</bdi>" in page
    assert 'data-state="online"' in page
    assert "bob" not in page
    assert f'name="participants" value="{ada.pk}"' in page


@pytest.mark.parametrize(
    "query", ["Bob Smith", "smith bob", "  bob   SM ", "@bob.smith", "Bob @bob.smith"]
)
def test_the_directory_finds_a_colleague_by_full_name_in_either_order(query: str) -> None:
    # given Bob Smith, and others who share one of his names
    me = make_user()
    bob = make_user(username="bob.smith", first_name="Bob", last_name="Smith")
    make_user(username="bob.jones", first_name="Bob", last_name="Jones")
    make_user(username="ann.smith", first_name="Ann", last_name="Smith")

    # when someone searches for him by his full name, in any order or part
    found = people_reachable(user=me, query=query)
    page = verified_client(me).get("/rooms/people/", {"q": query}).content.decode()

    # then he alone is found, on the page too
    assert found == [bob]
    assert "Bob Smith" in page
    assert "Jones" not in page
    assert "Ann Smith" not in page


def test_the_directory_hides_people_behind_a_wall_and_compliance_officers() -> None:
    me, walled = make_user(username="me"), make_user(username="walled")
    officer = grant_role(make_user(username="officer"), Role.COMPLIANCE_OFFICER)
    _walled(me, walled)

    page = verified_client(me).get("/rooms/people/").content.decode()

    assert "walled" not in page
    assert officer.username not in page


def test_someone_on_both_sides_of_a_wall_is_offered_nobody_on_either_side() -> None:
    # given a wall between research and trading, and me in both groups (as the services
    # treat it, I am then separated from everyone in either)
    me = make_user(username="me")
    researcher, trader = make_user(username="researcher"), make_user(username="trader")
    elsewhere = make_user(username="elsewhere")
    security_admin = _walled(researcher, trader)
    me.groups.add(*Group.objects.filter(name__in=["research", "trading"]))

    # when I look for colleagues in the picker, and in the directory
    offered = people_reachable(user=me)
    page = verified_client(me).get("/rooms/people/").content.decode()

    # then neither side is offered, as a conversation with either would be refused
    assert offered == sorted([elsewhere, security_admin], key=lambda u: u.username)
    assert "researcher" not in page
    assert "trader" not in page
    assert "elsewhere" in page


def test_a_compliance_officer_sees_the_directory_without_message_buttons() -> None:
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    make_user(username="colleague")

    page = verified_client(officer).get("/rooms/people/").content.decode()

    assert "colleague" in page
    assert 'value="start"' not in page


@pytest.mark.parametrize("page", ["/rooms/people/", "/rooms/browse/", NEW_CONVERSATION])
def test_a_search_with_a_nul_character_finds_nobody_and_is_no_server_error(page: str) -> None:
    # (PostgreSQL cannot compare text holding a NUL: the search was a 500)
    me = make_user(username="me")
    make_user(username="colleague")

    response = verified_client(me).get(f"{page}?q=coll%00")

    assert response.status_code == 200
    assert "colleague" not in response.content.decode()
