"""The room's "Add a member" form takes a username however people type it: "@carol" (as
in a mention) and "Carol" (any case) are "carol"; the rules are the service's, unchanged."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.forms import MemberAddForm
from rooms.models import Membership, Room
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

PORTAL_NOT_ADDABLE = (
    "“{}” cannot be added to this room: either no active colleague has that username, or an"
    " information barrier or their role keeps them out of it."
)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def _client(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def _added(room: Room) -> int:
    return AuditEvent.objects.filter(
        action=AuditAction.ROOM_MEMBER_ADDED, target_type="rooms.room", target_id=str(room.pk)
    ).count()


def _flash(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("typed", "cleaned"),
    [
        ("carol", "carol"),
        ("@carol", "carol"),
        ("Carol", "carol"),
        ("@Carol", "carol"),
        ("  @CAROL  ", "carol"),
        ("@@carol", "@carol"),  # one "@" is a mention's; a second is part of the name
        ("\uff23arol", "carol"),  # a fullwidth C: PRECIS maps its width
    ],
)
def test_the_form_strips_one_at_sign_and_gives_the_stored_form(typed: str, cleaned: str) -> None:
    form = MemberAddForm({"username": typed, "role": "member"})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["username"] == cleaned


@pytest.mark.parametrize("typed", ["", "@", "  @  "])
def test_an_empty_name_is_refused_by_the_form(typed: str) -> None:
    form = MemberAddForm({"username": typed, "role": "member"})

    assert not form.is_valid()
    assert "username" in form.errors


@pytest.mark.parametrize("typed", ["@carol", "Carol", "@CAROL"])
def test_an_owner_adds_carol_typed_as_a_mention_or_capitalised(typed: str) -> None:
    # given an owner's room and Carol, who is not in it
    owner, carol = make_user(), make_user(username="carol")
    room = make_room(owner=owner)

    # when the owner adds her as typed
    response = _client(owner).post(
        f"/rooms/{room.pk}/members/add/", {"username": typed, "role": "member"}, follow=True
    )

    # then she is a member, named as stored, once on the record
    membership = Membership.objects.get(room=room, user=carol)
    assert membership.role == Membership.Role.MEMBER
    assert "carol was added as member." in _flash(response)
    assert _added(room) == 1


def test_a_name_with_an_at_sign_that_names_nobody_is_explained_as_stored() -> None:
    # given an owner's room and nobody called "ghost"
    owner = make_user()
    room = make_room(owner=owner)
    members_before = Membership.objects.filter(room=room).count()

    # when the owner types "@Ghost"
    response = _client(owner).post(
        f"/rooms/{room.pk}/members/add/", {"username": "@Ghost", "role": "member"}, follow=True
    )

    # then the answer names the stored form, and nothing is written
    assert PORTAL_NOT_ADDABLE.format("ghost") in _flash(response)
    assert Membership.objects.filter(room=room).count() == members_before
    assert _added(room) == 0


def test_a_plain_member_typing_a_mention_is_refused_like_any_name() -> None:
    # given a plain member of a room, and Carol outside it
    owner, member, carol = make_user(), make_user(), make_user(username="carol")
    room = make_room(owner=owner, members=(member,))
    added_before = _added(room)

    # when the member tries "@carol" and "@nobody-here"
    known = _client(member).post(
        f"/rooms/{room.pk}/members/add/", {"username": "@carol", "role": "member"}
    )
    unknown = _client(member).post(
        f"/rooms/{room.pk}/members/add/", {"username": "@nobody-here", "role": "member"}
    )

    # then both are the same 403, and Carol is not added
    assert (known.status_code, unknown.status_code) == (403, 403)
    assert not Membership.objects.filter(room=room, user=carol).exists()
    assert _added(room) == added_before
