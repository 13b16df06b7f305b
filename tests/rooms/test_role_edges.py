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
from guardian.utils import get_anonymous_user

from accounts.models import User
from accounts.roles import Role
from accounts.selectors import people_active
from accounts.services import role_grant, user_deactivate
from audit.models import AuditEvent
from rooms.models import Membership, Room, RoomInvitation
from rooms.services import (
    direct_conversation_create,
    membership_add,
    membership_remove,
    membership_role_change,
    room_archive,
    room_invitation_accept,
    room_invitation_send,
    room_key_rotate,
    room_unarchive,
)
from safechat.actions import Refused
from safechat.keyring.models import RoomEpoch, SealedEpochKey, UserKeyPair
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room
from tests.support.clients import verified_client
from tests.support.commit_callbacks import broadcasts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def refusals(reason: str) -> int:
    return sum(
        1
        for extra in AuditEvent.objects.filter(
            action__in=["room.access.denied", "account.admin.refused", "account.role.refused"]
        ).values_list("extra", flat=True)
        if extra.get("reason") == reason
    )


def rows() -> tuple[Any, ...]:
    return (
        sorted(Membership.objects.values_list("room_id", "user_id", "role")),
        Room.objects.count(),
        RoomInvitation.objects.count(),
        SealedEpochKey.objects.count(),
        sorted(User.objects.values_list("pk", "is_active", "is_staff")),
        sorted(User.groups.through.objects.values_list("user_id", "group_id")),
        RoomEpoch.objects.count(),
    )


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
    assert len(broadcasts(queued)) == 1  # room.updated, after commit


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


def security_admin() -> User:
    return grant_role(make_user(), "security_admin")


# --- A role read-only on chat never leaves a room without an acting owner -----------
def test_the_only_owner_is_not_made_a_compliance_officer() -> None:
    # given a channel with one owner and a member
    owner, member = make_user(), make_user()
    make_room(owner=owner, members=(member,), name="Treasury")
    admin = security_admin()
    before = rows()

    # when a security admin grants the owner the compliance-officer role
    with pytest.raises(Refused, match="Treasury"):
        role_grant(actor=admin, user=owner, role=Role.COMPLIANCE_OFFICER)

    # then it is refused on the record, naming the room, and nothing changed
    assert refusals("sole owner") == 1
    refused = AuditEvent.objects.get(action="account.role.refused")
    assert refused.extra["operation"] == "role.grant"
    assert refused.extra["role"] == "compliance_officer"
    assert rows() == before
    assert not AuditEvent.objects.filter(action="account.role.granted").exists()
    assert not owner.groups.filter(name="compliance_officer").exists()


def test_the_only_owner_is_not_made_a_compliance_officer_in_the_portal() -> None:
    # given a channel's only owner, and a security admin in the portal
    owner = make_user()
    make_room(owner=owner, name="Treasury")
    admin = security_admin()
    before = rows()

    # when the admin grants the owner the compliance-officer role from the people page
    response = verified_client(admin).post(
        f"/accounts/admin/users/{owner.pk}/grant-role/", {"role": "compliance_officer"}
    )

    # then it is refused (403), on the record, and nothing changed
    assert response.status_code == 403
    assert refusals("sole owner") == 1
    assert rows() == before


def test_an_owner_beside_an_acting_co_owner_is_made_a_compliance_officer() -> None:
    # given a channel with two owners
    owner, co_owner = make_user(), make_user()
    room = make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER)

    # when one of them is made a compliance officer
    role_grant(actor=security_admin(), user=owner, role=Role.COMPLIANCE_OFFICER)

    # then it is granted, and the other owner is now the one the room keeps
    assert owner.groups.filter(name="compliance_officer").exists()
    assert AuditEvent.objects.filter(action="account.role.granted").count() == 1
    before = rows()
    with pytest.raises(Refused):
        membership_remove(actor=co_owner, room=room, member=co_owner)
    assert refusals("last owner") == 1
    assert rows() == before


def test_a_compliance_officer_owner_does_not_count_for_a_role_grant() -> None:
    # given two owners, one of them already a compliance officer (granted while the
    # other could act)
    owner, co_owner = make_user(), make_user()
    make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER, name="Rates")
    admin = security_admin()
    role_grant(actor=admin, user=co_owner, role=Role.COMPLIANCE_OFFICER)
    before = rows()

    # when the other is made a compliance officer too
    with pytest.raises(Refused, match="Rates"):
        role_grant(actor=admin, user=owner, role=Role.COMPLIANCE_OFFICER)

    # then it is refused: the room would keep no owner who can act
    assert refusals("sole owner") == 1
    assert rows() == before


def test_a_compliance_officer_owner_does_not_count_for_a_deactivation() -> None:
    # given two owners, one of them a compliance officer
    owner, co_owner = make_user(), make_user()
    make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER, name="Rates")
    grant_role(co_owner, "compliance_officer")
    admin = security_admin()
    before = rows()

    # when the other is deactivated
    with pytest.raises(Refused, match="Rates"):
        user_deactivate(actor=admin, user=owner)

    # then it is refused: the compliance officer cannot act for the room
    assert refusals("sole owner") == 1
    assert rows() == before


def test_a_compliance_officer_owner_does_not_count_for_a_demotion() -> None:
    # given two owners, one of them a compliance officer
    owner, co_owner = make_user(), make_user()
    room = make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER)
    grant_role(co_owner, "compliance_officer")
    before = rows()

    # when the acting owner leaves
    with pytest.raises(Refused):
        membership_remove(actor=owner, room=room, member=owner)

    # then it is refused, and the room keeps its acting owner
    assert refusals("last owner") == 1
    assert rows() == before


def test_direct_conversations_do_not_hold_their_starter() -> None:
    # given someone who started a direct conversation (its roles are fixed)
    starter, other = make_user(), make_user()
    direct_conversation_create(actor=starter, participants=[other])
    admin = security_admin()

    # when they are made a compliance officer, and someone else is deactivated
    role_grant(actor=admin, user=starter, role=Role.COMPLIANCE_OFFICER)
    user_deactivate(actor=admin, user=starter)

    # then both are done: a direct conversation has nobody to appoint and keeps no owner
    assert starter.groups.filter(name="compliance_officer").exists()
    assert not User.objects.get(pk=starter.pk).is_active
    assert refusals("sole owner") == 0


def test_a_role_is_not_granted_as_a_group() -> None:
    # given a channel's only owner and the compliance-officer role's group
    from django.contrib.auth.models import Group

    from accounts.roles import roles_sync
    from rooms.services import group_members_set, user_groups_change

    owner = make_user()
    make_room(owner=owner)
    roles_sync()
    officers = Group.objects.get(name="compliance_officer")
    admin = security_admin()
    before = rows()

    # when a security admin puts the owner into it through the group services
    with pytest.raises(Refused):
        user_groups_change(actor=admin, user=owner, add=[officers])
    with pytest.raises(Refused):
        group_members_set(actor=admin, group=officers, add=[owner])

    # then both are refused on the record (roles change through role_grant alone)
    assert refusals("role") == 2
    assert rows() == before


# --- Only owners grant owner or moderator, on every path ---------------------------
@pytest.mark.parametrize("role", ["owner", "moderator"])
def test_a_moderator_neither_adds_nor_invites_an_owner_or_a_moderator(role: str) -> None:
    # given a moderator and someone outside the room
    owner, moderator, outsider = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    before = rows()

    # when the moderator adds or invites them with that role
    with pytest.raises(Refused):
        membership_add(actor=moderator, room=room, user=outsider, role=role)
    with pytest.raises(Refused):
        room_invitation_send(actor=moderator, room=room, invitee=outsider, role=role)

    # then both are refused on the record, and nothing changed
    assert refusals(f"{role} role") == 2
    assert rows() == before
    assert (
        not AuditEvent.objects.filter(
            action__in=["room.member.added", "room.invitation.sent"], target_id=str(room.pk)
        )
        .exclude(extra__member=moderator.pk)
        .exists()
    )


def test_a_moderator_adds_a_member_and_invites_a_read_only_member() -> None:
    owner, moderator, first, second = make_user(), make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)

    membership_add(actor=moderator, room=room, user=first)
    room_invitation_send(actor=moderator, room=room, invitee=second, role="read_only")

    assert room.memberships.get(user=first).role == Membership.Role.MEMBER
    assert RoomInvitation.objects.filter(room=room, invitee=second).exists()


def test_the_check_under_the_lock_refuses_a_moderator_adding_a_moderator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a moderator whose quick check (before the transaction) is skipped
    import rooms.services.membership as membership

    owner, moderator, outsider = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    monkeypatch.setattr(membership, "_check_role", lambda role, *, actor, room: None)
    before = rows()

    # when they add someone as a moderator
    with pytest.raises(Refused):
        membership_add(actor=moderator, room=room, user=outsider, role="moderator")

    # then the check under the room's lock refuses it, on the record
    assert refusals("moderator role") == 1
    assert rows() == before


# --- An invitation holds only while its sender may grant it ------------------------
def _demote(owner: User, room: Room, inviter: User) -> None:
    membership_role_change(actor=owner, room=room, member=inviter, role="member")


def _deactivate(owner: User, room: Room, inviter: User) -> None:
    user_deactivate(actor=security_admin(), user=inviter)


def _make_compliance_officer(owner: User, room: Room, inviter: User) -> None:
    role_grant(actor=security_admin(), user=inviter, role=Role.COMPLIANCE_OFFICER)


def _remove(owner: User, room: Room, inviter: User) -> None:
    membership_remove(actor=owner, room=room, member=inviter)


@pytest.mark.parametrize("since", [_demote, _deactivate, _make_compliance_officer, _remove])
def test_an_owners_invitation_to_moderate_lapses_with_their_ownership(
    since: Callable[[User, Room, User], None],
) -> None:
    # given a co-owner who invited someone as a moderator, then lost the power to
    owner, inviter, invitee = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(inviter,), role=Membership.Role.OWNER)
    invitation = room_invitation_send(actor=inviter, room=room, invitee=invitee, role="moderator")
    since(owner, room, inviter)
    before = rows()

    # when the invitee accepts
    with pytest.raises(Refused, match="no longer holds"):
        room_invitation_accept(actor=invitee, invitation=invitation)

    # then it is refused on the record, and they are not in the room
    assert refusals("inviter no longer entitled") == 1
    assert rows() == before
    assert not room.memberships.filter(user=invitee).exists()
    assert not AuditEvent.objects.filter(action="room.invitation.accepted").exists()


def test_a_moderators_invitation_to_join_lapses_when_they_are_demoted() -> None:
    owner, moderator, invitee = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    invitation = room_invitation_send(actor=moderator, room=room, invitee=invitee)
    membership_role_change(actor=owner, room=room, member=moderator, role="member")
    before = rows()

    with pytest.raises(Refused):
        room_invitation_accept(actor=invitee, invitation=invitation)

    assert refusals("inviter no longer entitled") == 1
    assert rows() == before


def test_an_invitation_holds_while_its_sender_may_grant_it() -> None:
    owner, moderator, invitee = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    invitation = room_invitation_send(actor=moderator, room=room, invitee=invitee)

    membership = room_invitation_accept(actor=invitee, invitation=invitation)

    assert membership.role == Membership.Role.MEMBER
    assert AuditEvent.objects.filter(action="room.invitation.accepted").count() == 1


# --- A direct conversation's membership and roles are fixed ------------------------
def test_nobody_changes_a_role_in_a_direct_conversation() -> None:
    # given a direct conversation, started by its owner
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    before = rows()

    # when the starter makes the other an owner, or read-only
    for role in ("owner", "read_only"):
        with pytest.raises(Refused, match="fixed"):
            membership_role_change(actor=starter, room=direct, member=other, role=role)

    # then both are refused on the record, and nothing changed
    assert refusals("direct conversation") == 2
    assert rows() == before


@pytest.mark.parametrize("others", [1, 2])
def test_nobody_leaves_a_direct_conversation(others: int) -> None:
    # given a one-to-one or a group conversation
    starter = make_user()
    leaver = make_user()
    people: list[User | None] = [leaver, *(make_user() for _ in range(others - 1))]
    direct = direct_conversation_create(actor=starter, participants=people)
    before = rows()

    # when a participant leaves it
    with pytest.raises(Refused, match="fixed"):
        membership_remove(actor=leaver, room=direct, member=leaver)

    # then it is refused on the record, and nothing changed
    assert refusals("direct conversation") == 1
    assert rows() == before


def test_the_portal_offers_no_leave_nor_manage_in_a_direct_conversation() -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])

    page = verified_client(starter).get(f"/rooms/?room={direct.pk}")

    assert page.status_code == 200
    assert b"Leave room" not in page.content
    assert b"Change role" not in page.content


def _barrier_between(first: User, second: User) -> int:
    """A barrier raised between two people who already share rooms; returns its id."""
    from django.contrib.auth.models import Group

    from rooms.services import barrier_create

    side_a = Group.objects.create(name=f"Research {first.pk}")
    side_b = Group.objects.create(name=f"Trading {second.pk}")
    first.groups.add(side_a)
    second.groups.add(side_b)
    barrier, _ = barrier_create(actor=security_admin(), group_a=side_a, group_b=side_b)
    return barrier.pk


def test_a_security_admin_still_removes_from_a_direct_conversation_to_resolve_a_barrier() -> None:
    # given a direct conversation that a barrier raised since now divides
    starter, first, second = make_user(), make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[first, second])
    barrier = _barrier_between(first, second)

    # when a security admin removes one side (resolving a barrier never waits on a
    # conversation's fixed membership)
    membership_remove(actor=security_admin(), room=direct, member=second)

    # then they are gone, and the event names the barrier resolved
    assert not direct.memberships.filter(user=second).exists()
    (removed,) = AuditEvent.objects.filter(action="room.member.removed")
    assert removed.extra == {"member": second.pk, "barriers": [barrier]}


def test_a_security_admin_removes_an_owner_named_by_a_barrier_even_in_an_archived_room() -> None:
    # given an archived room whose co-owner a barrier raised since separates from a member
    owner, co_owner, member = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(co_owner,), role=Membership.Role.OWNER)
    membership_add(actor=owner, room=room, user=member)
    room_archive(actor=owner, room=room)
    barrier = _barrier_between(co_owner, member)

    # when a security admin who is not in the room removes the co-owner
    membership_remove(actor=security_admin(), room=room, member=co_owner)

    # then the co-owner is gone (the barrier is resolved), on the record with the barrier
    assert not room.memberships.filter(user=co_owner).exists()
    (removed,) = AuditEvent.objects.filter(action="room.member.removed")
    assert removed.extra == {"member": co_owner.pk, "barriers": [barrier]}


def test_a_security_admin_who_is_a_plain_member_does_not_remove_a_co_owner_over_the_api() -> None:
    # given a room with two owners, a moderator and a security admin who is a plain
    # member; no information barrier anywhere
    owner, co_owner, moderator = make_user(), make_user(), make_user()
    sam = security_admin()
    room = make_room(owner=owner)
    membership_add(actor=owner, room=room, user=co_owner, role="owner")
    membership_add(actor=owner, room=room, user=moderator, role="moderator")
    membership_add(actor=owner, room=room, user=sam, role="member")
    before = rows()

    # when the security admin removes the co-owner and the moderator through the API
    client = verified_client(sam)
    answers = [
        client.delete(f"/api/v1/rooms/{room.pk}/members/{co_owner.pk}/").status_code,
        client.delete(f"/api/v1/rooms/{room.pk}/members/{moderator.pk}/").status_code,
    ]

    # then both are refused (their removal power resolves barriers, and there is none),
    # on the record, and nothing changed
    assert answers == [403, 403]
    assert rows() == before
    assert not AuditEvent.objects.filter(action="room.member.removed").exists()
    assert AuditEvent.objects.filter(action="room.access.denied", actor_id=sam.pk).count() == 2


def test_a_security_admin_does_not_empty_an_archived_room_without_a_barrier() -> None:
    # given an archived room, and no information barrier
    owner, member = make_user(), make_user()
    sam = security_admin()
    room = make_room(owner=owner, members=(member,))
    room_archive(actor=owner, room=room)
    before = rows()
    membership = Membership.objects.get(room=room, user=member)

    # when the security admin uses the admin's "remove members" action on it
    answer = verified_client(sam).post(
        "/admin/rooms/membership/",
        {"action": "remove_members", "_selected_action": [membership.pk]},
    )

    # then nothing changed (every write is refused in an archived room, and no barrier
    # asks for this one), and the refusal is on the record
    assert answer.status_code in (200, 302)
    assert rows() == before
    assert not AuditEvent.objects.filter(action="room.member.removed").exists()
    assert AuditEvent.objects.filter(action="room.access.denied", actor_id=sam.pk).exists()


# --- Who cannot be reached is answered alike ---------------------------------------
def test_a_direct_conversation_answers_alike_for_everyone_who_cannot_be_reached() -> None:
    # given a compliance officer, a trader behind a barrier, and ids that name nobody
    from django.contrib.auth.models import Group
    from guardian.utils import get_anonymous_user

    from rooms.services import barrier_create

    researcher = make_user()
    officer = grant_role(make_user(), "compliance_officer")
    trader = make_user()
    research, _ = Group.objects.get_or_create(name="Research")
    trading, _ = Group.objects.get_or_create(name="Trading")
    researcher.groups.add(research)
    trader.groups.add(trading)
    barrier_create(actor=security_admin(), group_a=research, group_b=trading)
    gone = make_user()
    gone.is_active = False
    gone.save()
    client = verified_client(researcher)
    before = rows()

    # when the researcher starts a conversation with each
    answers = {
        name: client.post("/api/v1/direct/", {"participants": [pk]}, "application/json")
        for name, pk in {
            "compliance officer": officer.pk,
            "behind a barrier": trader.pk,
            "nobody": 99999,
            "deactivated": gone.pk,
            "system row": get_anonymous_user().pk,
        }.items()
    }

    # then every answer is the same 400, nothing is made, and the refusals are recorded
    def answer(response: Any) -> tuple[int, dict[str, Any]]:
        body = dict(response.json())  # a copy: the client caches the parsed body
        assert body.pop("request_id")  # each request's own
        return response.status_code, body

    nobody = answer(answers["nobody"])
    assert nobody[0] == 400
    assert nobody[1]["detail"] == "one of these people cannot be reached"
    assert {name: answer(a) for name, a in answers.items()} == {name: nobody for name in answers}
    assert rows() == before
    assert refusals("read-only role") == 1
    assert AuditEvent.objects.filter(action="barrier.refused").count() == 1


# --- An archived room's keys stay as they are ----------------------------------------
def test_the_room_key_is_not_rotated_in_an_archived_room() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    room_archive(actor=owner, room=room)
    before = rows()

    with pytest.raises(Refused):
        room_key_rotate(actor=owner, room=room)

    assert refusals("archived") == 1
    assert rows() == before
    assert not AuditEvent.objects.filter(
        action="key.epoch.created", extra__reason="on_demand"
    ).exists()


# --- Archiving from the admin follows the service's rule --------------------------------
def test_a_security_admin_archives_from_the_admin_only_a_room_they_own() -> None:
    # given a security admin who owns one room, and a room someone else owns
    admin, owner = security_admin(), make_user()
    theirs = make_room(owner=admin, name="Admin desk")
    others = make_room(owner=owner, name="Treasury")
    client = verified_client(admin)

    # when they archive both with the admin's action
    response = client.post(
        "/admin/rooms/room/",
        {"action": "archive_rooms", "_selected_action": [theirs.pk, others.pk]},
        follow=True,
    )

    # then only their own is archived; the other is refused on the record, unchanged
    assert response.status_code == 200
    assert Room.objects.get(pk=theirs.pk).is_archived
    assert not Room.objects.get(pk=others.pk).is_archived
    assert refusals("missing manage_room") == 1
    assert AuditEvent.objects.filter(action="room.archived").count() == 1
    assert any(
        "Treasury: you are not allowed to do this in this room" in str(m)
        for m in response.context["messages"]
    )


# --- Read-only people delete nothing they wrote ------------------------------------
def test_a_member_made_compliance_officer_does_not_delete_their_old_message() -> None:
    from rooms.models import Message
    from rooms.services import message_post

    # given a member who posted, then was made a compliance officer
    owner, carol = make_user(), make_user()
    room = make_room(owner=owner, members=(carol,))
    message = message_post(sender=carol, room=room, text="the trade was booked at 4.15")
    role_grant(actor=security_admin(), user=carol, role=Role.COMPLIANCE_OFFICER)

    # when the compliance officer deletes it over the API
    answer = verified_client(User.objects.get(pk=carol.pk)).delete(
        f"/api/v1/rooms/{room.pk}/messages/{message.pk}/"
    )

    # then it is refused (read-only on chat: the record stays), on the record
    assert answer.status_code == 403
    assert Message.objects.get(pk=message.pk).deleted_at is None
    assert not AuditEvent.objects.filter(action="message.deleted").exists()
    assert refusals("missing post_message") == 1


def test_a_member_made_read_only_does_not_delete_their_old_message() -> None:
    from rooms.models import Message
    from rooms.services import message_delete, message_post

    # given a member who posted, then was made read-only
    owner, dan = make_user(), make_user()
    room = make_room(owner=owner, members=(dan,))
    message = message_post(sender=dan, room=room, text="indicative only")
    membership_role_change(actor=owner, room=room, member=dan, role="read_only")

    # when they delete it
    with pytest.raises(Refused):
        message_delete(actor=dan, message=message)

    # then it stays, and the refusal is on the record
    assert Message.objects.get(pk=message.pk).deleted_at is None
    assert not AuditEvent.objects.filter(action="message.deleted").exists()
    assert refusals("missing post_message") == 1


# --- The read marker is the reader's own bookmark ----------------------------------
def test_the_read_marker_still_moves_in_an_archived_room_and_nothing_else_changes() -> None:
    from rooms.models import Message
    from rooms.services import message_post

    # given an archived room with a message the member has not read
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=owner, room=room, text="final")
    Membership.objects.filter(room=room, user=member).update(last_read_message_id=0)
    room_archive(actor=owner, room=room)
    before = rows()
    messages = list(Message.objects.values_list("pk", "deleted_at", "edited_at"))
    events = AuditEvent.objects.count()

    # when the member moves their read marker over the API
    answer = verified_client(member).post(
        f"/api/v1/rooms/{room.pk}/read-marker/",
        {"message_id": message.pk},
        content_type="application/json",
    )

    # then it moves (documented: a bookmark, not a write to the room), and nothing else
    # in the room changed, nor was anything recorded as a change
    assert answer.status_code in (200, 204)
    assert Membership.objects.get(room=room, user=member).last_read_message_id == message.pk
    assert rows() == before
    assert list(Message.objects.values_list("pk", "deleted_at", "edited_at")) == messages
    assert Room.objects.get(pk=room.pk).is_archived
    assert AuditEvent.objects.count() == events
