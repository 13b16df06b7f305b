"""Adding or inviting someone who cannot join answers as an id that names nobody.

A compliance officer, or a person an information barrier separates from a member, is
refused and recorded as what it is, but a room manager reads exactly the answer an
unknown or inactive person gets: nothing of anyone's role or barriers (docs/rooms.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.roles import Role
from accounts.services import user_deactivate
from audit.models import AuditEvent
from rooms import permissions as perms
from rooms.errors import NOT_ADDABLE, BarrierViolationError, UnreachableError
from rooms.models import Membership, Room, RoomInvitation
from rooms.services import (
    barrier_create,
    membership_add,
    room_invitation_accept,
    room_invitation_send,
)
from rooms.services.membership import _membership_insert
from safechat.keyring.services import user_key_create
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

PORTAL_NOT_ADDABLE = (
    "“{}” cannot be added to this room: either no active colleague has that username, or an"
    " information barrier or their role keeps them out of it."
)


def events(action: str) -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action=action).order_by("seq").values_list("extra", flat=True)
    )


class People:
    """An owner's room with a researcher in it, and the people one might try to add."""

    def __init__(self) -> None:
        self.admin = grant_role(make_user(), Role.SECURITY_ADMIN)
        self.owner, researcher = make_user(), make_user()
        self.room = make_room(owner=self.owner, members=(researcher,))
        self.trader = make_user(username="trader")
        self.officer = grant_role(make_user(username="officer"), Role.COMPLIANCE_OFFICER)
        self.gone = make_user(username="gone")
        user_deactivate(actor=self.admin, user=self.gone)
        research, trading = Group.objects.create(name="R"), Group.objects.create(name="T")
        researcher.groups.add(research)
        self.trader.groups.add(trading)
        barrier_create(actor=self.admin, group_a=research, group_b=trading)
        self.free = make_user(username="free")


@pytest.fixture
def people() -> People:
    return People()


def test_the_api_answers_the_same_for_nobody_an_inactive_person_an_officer_and_a_barrier(
    people: People,
) -> None:
    client = Client()
    sign_in_client(client, people.owner, verified=True)
    url = f"/api/v1/rooms/{people.room.pk}/members/"
    members_before = set(Membership.objects.values_list("pk", flat=True))

    answers = {
        name: client.post(url, {"user_id": user_id}, content_type="application/json")
        for name, user_id in (
            ("nobody", people.free.pk + 999),
            ("inactive", people.gone.pk),
            ("officer", people.officer.pk),
            ("barrier", people.trader.pk),
        )
    }

    # one answer, word for word (but the request's own id)
    bodies = {
        name: (answer.status_code, {k: v for k, v in answer.json().items() if k != "request_id"})
        for name, answer in answers.items()
    }
    assert len({repr(body) for body in bodies.values()}) == 1, bodies
    status, body = bodies["nobody"]
    assert status == 400
    assert NOT_ADDABLE in body["detail"]
    # nothing written, and the real reasons on the record
    assert set(Membership.objects.values_list("pk", flat=True)) == members_before
    assert [e["reason"] for e in events("room.access.denied")] == ["read-only role"]
    assert events("room.access.denied")[0]["person"] == people.officer.pk
    assert [e["reason"] for e in events("barrier.refused")] == ["information-barrier"]


def test_the_service_answers_an_officer_and_a_barrier_as_an_unknown_person(
    people: People,
) -> None:
    with pytest.raises(ValidationError) as unknown:
        membership_add(actor=people.owner, room=people.room, user=None)
    for person in (people.officer, people.trader):
        with pytest.raises(UnreachableError) as refused:
            membership_add(actor=people.owner, room=people.room, user=person)
        assert refused.value.message == unknown.value.messages[0] == NOT_ADDABLE
        assert not Membership.objects.filter(room=people.room, user=person).exists()


def test_inviting_answers_an_officer_and_a_barrier_as_an_unknown_person(people: People) -> None:
    with pytest.raises(ValidationError, match=NOT_ADDABLE):
        room_invitation_send(actor=people.owner, room=people.room, invitee=people.gone)
    for person in (people.officer, people.trader):
        with pytest.raises(UnreachableError, match=NOT_ADDABLE):
            room_invitation_send(actor=people.owner, room=people.room, invitee=person)

    assert not RoomInvitation.objects.exists()
    assert [e["reason"] for e in events("room.access.denied")] == ["read-only role"]
    assert [e["reason"] for e in events("barrier.refused")] == ["information-barrier"]


def test_the_check_under_the_locks_answers_alike(people: People) -> None:
    # a barrier raced past the quick answer is refused under the locks, answered the same
    user_key_create(user=people.trader)

    with pytest.raises(UnreachableError, match=NOT_ADDABLE):
        _membership_insert(
            actor=people.owner,
            room=people.room,
            user=people.trader,
            role=Membership.Role.MEMBER,
            permission=perms.MANAGE_MEMBERS,
        )

    assert [e["reason"] for e in events("barrier.refused")] == ["information-barrier"]


def test_the_invitee_accepting_is_told_the_barrier(people: People) -> None:
    # the person's own acceptance: nothing of anyone else's to hide from them
    newcomer = make_user()
    invitation = room_invitation_send(actor=people.owner, room=people.room, invitee=newcomer)
    newcomer.groups.add(Group.objects.get(name="T"))

    with pytest.raises(BarrierViolationError):
        room_invitation_accept(actor=newcomer, invitation=invitation)


def test_an_unaddable_person_costs_the_rate_limit_nothing(people: People, settings: Any) -> None:
    # as an unknown id does not: the limit tells nothing either
    settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT = (1, 600)
    for person in (people.officer, people.trader):
        with pytest.raises(UnreachableError):
            membership_add(actor=people.owner, room=people.room, user=person)

    membership_add(actor=people.owner, room=people.room, user=people.free)

    assert Membership.objects.filter(room=people.room, user=people.free).exists()


def test_the_portal_says_the_same_for_each(people: People) -> None:
    client = Client()
    sign_in_client(client, people.owner, verified=True)
    said = {}
    for username in ("ghost", "gone", "officer", "trader"):
        response = client.post(
            f"/rooms/{people.room.pk}/members/add/",
            {"username": username, "role": "member"},
            follow=True,
        )
        assert response.status_code == 200
        said[username] = [str(m) for m in response.context["messages"]]

    assert said["ghost"] == [PORTAL_NOT_ADDABLE.format("ghost")]
    assert said["gone"] == [PORTAL_NOT_ADDABLE.format("gone")]
    assert said["officer"] == [PORTAL_NOT_ADDABLE.format("officer")]
    assert said["trader"] == [PORTAL_NOT_ADDABLE.format("trader")]
    assert Room.objects.get(pk=people.room.pk).memberships.count() == 2


def test_the_add_member_suggestions_leave_out_whom_a_barrier_keeps_out_of_the_room(
    people: People,
) -> None:
    # given the owner's room with a researcher in it; the trader is walled from research
    client = Client()
    sign_in_client(client, people.owner, verified=True)

    # when the owner asks whom they could add to the room, and whom they can reach at all
    for_room = client.get("/api/v1/people/", {"room": people.room.pk, "limit": 50})
    anyone = client.get("/api/v1/people/", {"limit": 50})

    # then the trader is reachable but never suggested for this room; nor are its members
    addable = {p["username"] for p in for_room.json()["results"]}
    reachable = {p["username"] for p in anyone.json()["results"]}
    assert for_room.status_code == 200
    assert "trader" in reachable
    assert "trader" not in addable
    assert "free" in addable
    assert not addable & set(people.room.memberships.values_list("user__username", flat=True))


def test_the_add_member_suggestions_of_a_room_one_cannot_see_are_a_404(people: People) -> None:
    client = Client()
    sign_in_client(client, people.free, verified=True)

    answer = client.get("/api/v1/people/", {"room": people.room.pk})

    assert answer.status_code == 404
    assert "results" not in answer.json()
