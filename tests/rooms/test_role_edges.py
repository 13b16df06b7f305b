"""The edges between roles, through the services and the portal: the one selector of
people, compliance officers, direct conversations, the last owner and unarchiving.

The access matrix over the API (``test_api.py``) holds the same edges route by route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from guardian.utils import get_anonymous_user

from accounts.models import User
from accounts.selectors import people_active
from accounts.services import user_deactivate
from audit.models import AuditEvent
from rooms.models import Membership, Room, RoomInvitation
from rooms.services import (
    direct_conversation_create,
    membership_add,
    membership_remove,
    membership_role_change,
    room_archive,
    room_invitation_send,
    room_unarchive,
)
from safechat.actions import Refused
from safechat.keyring.models import SealedEpochKey, UserKeyPair
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def refusals(reason: str) -> int:
    return sum(
        1
        for extra in AuditEvent.objects.filter(
            action__in=["room.access.denied", "account.admin.refused"]
        ).values_list("extra", flat=True)
        if extra.get("reason") == reason
    )


def rows() -> tuple[Any, ...]:
    return (
        sorted(Membership.objects.values_list("room_id", "user_id", "role")),
        Room.objects.count(),
        RoomInvitation.objects.count(),
        SealedEpochKey.objects.count(),
        sorted(User.objects.values_list("pk", "is_active")),
    )


def verified_client(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


# --- One selector of people -----------------------------------------------------------
def test_guardians_anonymous_row_is_no_person() -> None:
    anonymous = get_anonymous_user()

    assert not people_active().filter(pk=anonymous.pk).exists()


def test_guardians_anonymous_row_is_never_added_nor_given_a_key_pair() -> None:
    # given an owner and guardian's internal anonymous row
    owner = make_user()
    room = make_room(owner=owner)
    anonymous = get_anonymous_user()
    client = verified_client(owner)
    before = rows()

    # when the owner adds it, or starts a direct conversation with it
    added = client.post(
        f"/api/v1/rooms/{room.pk}/members/", {"user_id": anonymous.pk}, "application/json"
    )
    direct = client.post("/api/v1/direct/", {"participants": [anonymous.pk]}, "application/json")
    with pytest.raises(ValidationError):
        membership_add(actor=owner, room=room, user=anonymous)

    # then both are refused and it holds nothing
    assert added.status_code == 400
    assert direct.status_code == 400
    assert rows() == before
    assert not UserKeyPair.objects.filter(user=anonymous).exists()


# --- Compliance officers --------------------------------------------------------------
def test_a_compliance_officer_is_never_invited() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    officer = grant_role(make_user(), "compliance_officer")
    before = rows()

    with pytest.raises(Refused):
        room_invitation_send(actor=owner, room=room, invitee=officer)

    assert rows() == before
    assert refusals("read-only role") == 1


def test_a_compliance_officer_cannot_accept_an_earlier_invitation() -> None:
    from rooms.services import room_invitation_accept

    owner, person = make_user(), make_user()
    room = make_room(owner=owner)
    invitation = room_invitation_send(actor=owner, room=room, invitee=person)
    grant_role(person, "compliance_officer")
    before = rows()

    with pytest.raises(Refused):
        room_invitation_accept(actor=person, invitation=invitation)

    assert rows() == before
    assert refusals("read-only role") == 1


def test_a_compliance_officer_is_not_given_a_posting_role() -> None:
    owner, person = make_user(), make_user()
    room = make_room(owner=owner, members=(person,), role=Membership.Role.READ_ONLY)
    grant_role(person, "compliance_officer")
    before = rows()

    with pytest.raises(Refused):
        membership_role_change(actor=owner, room=room, member=person, role="member")

    assert rows() == before
    assert refusals("read-only role") == 1


# --- Direct conversations ------------------------------------------------------------
def test_nobody_is_invited_into_a_direct_conversation() -> None:
    starter, other, newcomer = make_user(), make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    before = rows()

    with pytest.raises(Refused):
        room_invitation_send(actor=starter, room=direct, invitee=newcomer)

    assert rows() == before
    assert refusals("direct conversation") == 1


def test_the_portal_offers_no_add_form_in_a_direct_conversation() -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])

    page = verified_client(starter).get(f"/rooms/?room={direct.pk}")

    assert page.status_code == 200
    assert b"Add a member" not in page.content


# --- Moderator against owner, in the portal ----------------------------------------
def test_a_moderator_cannot_demote_the_owner_in_the_portal() -> None:
    owner, moderator = make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    before = rows()

    response = verified_client(moderator).post(
        f"/rooms/{room.pk}/members/{owner.pk}/role/", {"role": "member"}, follow=True
    )

    assert rows() == before
    assert refusals("owner role") == 1
    assert any("only an owner" in str(m).lower() for m in response.context["messages"])


def test_the_portal_offers_a_moderator_only_member_and_read_only() -> None:
    owner, moderator, member = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    membership_add(actor=owner, room=room, user=member)

    page = verified_client(moderator).get(f"/rooms/?room={room.pk}")

    assert [value for value, _ in page.context["role_choices"]] == ["member", "read_only"]


def test_a_non_manager_learns_nothing_from_a_username_in_the_portal() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    outsider = make_user()
    client = verified_client(member)
    before = rows()

    known = client.post(
        f"/rooms/{room.pk}/members/add/", {"username": outsider.username, "role": "member"}
    )
    unknown = client.post(
        f"/rooms/{room.pk}/members/add/", {"username": "nobody-at-all", "role": "member"}
    )

    assert known.status_code == unknown.status_code == 403
    assert rows() == before
    assert refusals("missing manage_members") == 2


# --- Archived rooms: unarchiving -----------------------------------------------------
def test_a_room_admin_member_unarchives_and_it_is_recorded(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    owner, admin = make_user(), grant_role(make_user(), "room_admin")
    room = make_room(owner=owner, members=(admin,))
    room_archive(actor=owner, room=room)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        unarchived = room_unarchive(actor=admin, room=room)

    assert not unarchived.is_archived
    assert not Room.objects.get(pk=room.pk).is_archived
    assert AuditEvent.objects.filter(action="room.unarchived", target_id=str(room.pk)).count() == 1
    assert len(queued) == 1  # room.updated, after commit


def test_a_member_cannot_unarchive() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    room_archive(actor=owner, room=room)

    with pytest.raises(Refused):
        room_unarchive(actor=member, room=room)

    assert Room.objects.get(pk=room.pk).is_archived
    assert refusals("unarchive") == 1
    assert not AuditEvent.objects.filter(action="room.unarchived").exists()


def test_the_owner_unarchives_in_the_portal() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    room_archive(actor=owner, room=room)
    client = verified_client(owner)
    page = client.get(f"/rooms/?room={room.pk}")

    response = client.post(f"/rooms/{room.pk}/unarchive/")

    assert b"Unarchive room" in page.content
    assert response.status_code == 302
    assert not Room.objects.get(pk=room.pk).is_archived


# --- The last owner's account ------------------------------------------------------
def test_the_only_owner_of_a_room_is_not_deactivated() -> None:
    owner = make_user()
    room = make_room(owner=owner, name="Treasury")
    security_admin = grant_role(make_user(), "security_admin")
    before = rows()

    with pytest.raises(Refused, match="Treasury"):
        user_deactivate(actor=security_admin, user=owner)

    assert rows() == before
    assert refusals("sole owner") == 1
    assert room.memberships.get(user=owner).role == Membership.Role.OWNER


def test_an_owner_with_a_co_owner_is_deactivated() -> None:
    owner, co_owner = make_user(), make_user()
    room = make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER)
    security_admin = grant_role(make_user(), "security_admin")

    user_deactivate(actor=security_admin, user=owner)

    assert not User.objects.get(pk=owner.pk).is_active
    assert room.memberships.filter(role=Membership.Role.OWNER).count() == 2


def test_the_last_active_owner_is_not_demoted_beside_a_deactivated_one() -> None:
    owner, co_owner = make_user(), make_user()
    room = make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER)
    user_deactivate(actor=grant_role(make_user(), "security_admin"), user=owner)
    before = rows()

    # a deactivated owner cannot act for the room, so it does not count
    with pytest.raises(Refused):
        membership_remove(actor=co_owner, room=room, member=co_owner)

    assert rows() == before
    assert refusals("last owner") == 1
