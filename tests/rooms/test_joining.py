"""Listed rooms: who finds them (``rooms_joinable``) and who joins them (``room_join``).

Every refusal is checked to write nothing (no membership, no key copy, no change-feed
entry, no success audit event) and to be recorded once, as what it is, while the rooms a
person may not know of are answered exactly as a room that does not exist.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from rooms.errors import NO_SUCH_ROOM, RateLimitedError, RoomHiddenError
from rooms.models import InformationBarrier, Membership, Room, RoomChange
from rooms.selectors import message_page, room_list_for_user, rooms_joinable
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    membership_add,
    message_post,
    room_archive,
    room_create,
    room_join,
    room_update,
)
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

LISTED = Room.Visibility.LISTED


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def security_admin() -> User:
    admin = User.objects.get(pk=grant_role(make_user(), Role.SECURITY_ADMIN).pk)
    return User.objects.get(pk=admin.pk)


def wall(left: User, right: User) -> None:
    """An information barrier between a group ``left`` is in and one ``right`` is in."""
    research, _ = Group.objects.get_or_create(name="Research")
    trading, _ = Group.objects.get_or_create(name="Trading")
    left.groups.add(research)
    right.groups.add(trading)
    barrier_create(actor=security_admin(), group_a=research, group_b=trading, reason="MAR")


def written(room: Room) -> tuple[Any, ...]:
    """Everything a join writes: memberships, key copies, feed entries, success events."""
    return (
        sorted(Membership.objects.filter(room=room).values_list("user_id", "role")),
        SealedEpochKey.objects.filter(epoch__room=room).count(),
        RoomChange.objects.filter(room_id=room.pk).count(),
        AuditEvent.objects.filter(action="room.member.added").count(),
        Room.objects.filter(pk=room.pk).values_list("rekey_reason", flat=True).get(),
    )


def refusals(actor: User, action: str = "room.access.denied") -> list[dict[str, Any]]:
    return [
        event.extra
        for event in AuditEvent.objects.filter(action=action, actor_id=actor.pk).order_by("seq")
    ]


# --- joining -----------------------------------------------------------------------------
def test_a_colleague_joins_a_listed_room_as_a_member_and_it_is_on_the_record() -> None:
    # given a listed room
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, name="Macro ideas", visibility=LISTED)

    # when a colleague joins it
    membership = room_join(actor=colleague, room=room)

    # then they are a member like anyone added, with the room's keys, on the record
    assert membership.role == Membership.Role.MEMBER
    assert room_list_for_user(user=colleague).filter(pk=room.pk).exists()
    assert SealedEpochKey.objects.filter(user=colleague, epoch__room=room).exists()
    event = AuditEvent.objects.filter(action="room.member.added").latest("seq")
    assert event.actor_id == colleague.pk
    assert event.extra == {
        "member": colleague.pk, "role": "member", "epochs_granted": 1, "joined": True,
    }  # fmt: skip
    change = RoomChange.objects.filter(room_id=room.pk).latest("pk")
    assert (change.kind, change.user_id, change.role) == ("member.added", colleague.pk, "member")
    assert room not in rooms_joinable(user=colleague)


def test_joining_a_room_that_hides_history_follows_the_history_rule() -> None:
    # given a listed room that hides history, with a conversation in it
    owner, newcomer = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED, history_visible=False)
    message_post(sender=owner, room=room, text="before: the client's position")

    # when someone joins and the conversation goes on
    room_join(actor=newcomer, room=room)
    joined = Membership.objects.get(room=room, user=newcomer)
    assert joined.visible_from_seq == 1
    assert Room.objects.get(pk=room.pk).rekey_reason == "member-joined"
    message_post(sender=owner, room=room, text="after: welcome")

    # then they read only what followed, under a key that protects nothing earlier
    assert [m.text for m in message_page(reader=newcomer, room=room)] == ["after: welcome"]
    held = SealedEpochKey.objects.filter(user=newcomer, epoch__room=room)
    assert sorted(held.values_list("epoch__number", flat=True)) == [2]
    assert RoomEpoch.objects.get(room=room, number=2).reason == "member-joined"
    assert room_list_for_user(user=newcomer).get(pk=room.pk).unread == 1  # type: ignore[attr-defined]


def test_joining_a_room_that_shows_history_reads_it_all() -> None:
    owner, newcomer = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED, history_visible=True)
    message_post(sender=owner, room=room, text="the whole story")

    room_join(actor=newcomer, room=room)

    assert [m.text for m in message_page(reader=newcomer, room=room)] == ["the whole story"]
    # unread starts at the moment of joining, whatever the setting
    assert room_list_for_user(user=newcomer).get(pk=room.pk).unread == 0  # type: ignore[attr-defined]


def test_a_member_joining_again_gets_their_membership_and_nothing_is_written() -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,), visibility=LISTED)
    before = written(room)

    membership = room_join(actor=member, room=room)

    assert membership.user_id == member.pk
    assert written(room) == before


# --- refusals ----------------------------------------------------------------------------
def test_a_private_room_is_refused_as_if_it_did_not_exist() -> None:
    owner, stranger = make_room_admin(), make_user()
    room = make_room(owner=owner, name="Secret M&A")
    before = written(room)

    with pytest.raises(RoomHiddenError) as refused:
        room_join(actor=stranger, room=room)

    assert str(refused.value) == NO_SUCH_ROOM
    assert written(room) == before
    assert refusals(stranger) == [{"reason": "not listed"}]


def test_a_direct_conversation_is_never_joined_and_never_listed() -> None:
    alice, bob, eve = make_user(), make_user(), make_user()
    direct = direct_conversation_create(actor=alice, participants=[bob])
    before = written(direct)

    with pytest.raises(RoomHiddenError):
        room_join(actor=eve, room=direct)
    # and the database refuses to list one, whatever writes it
    with pytest.raises(IntegrityError), transaction.atomic():
        Room.objects.filter(pk=direct.pk).update(visibility=LISTED)

    assert written(direct) == before
    assert refusals(eve) == [{"reason": "not listed"}]
    assert direct not in rooms_joinable(user=eve)


def test_a_compliance_officer_is_refused_as_if_the_room_did_not_exist() -> None:
    owner = make_room_admin()
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    room = make_room(owner=owner, visibility=LISTED)
    before = written(room)

    with pytest.raises(RoomHiddenError) as refused:
        room_join(actor=officer, room=room)

    assert str(refused.value) == NO_SUCH_ROOM
    assert written(room) == before
    assert [r["reason"] for r in refusals(officer)] == ["read-only role"]
    assert list(rooms_joinable(user=officer)) == []


def test_someone_a_barrier_separates_from_a_member_is_refused_as_if_it_did_not_exist() -> None:
    # given a listed room with a trader in it, and a researcher behind a wall from traders
    owner, trader, researcher = make_room_admin(), make_user(), make_user()
    wall(researcher, trader)
    room = make_room(owner=owner, members=(trader,), visibility=LISTED)
    before = written(room)

    # when the researcher tries to join
    with pytest.raises(RoomHiddenError) as refused:
        room_join(actor=researcher, room=room)

    # then they learn nothing, nothing is written, and the barrier's refusal is recorded
    assert str(refused.value) == NO_SUCH_ROOM
    assert written(room) == before
    assert refusals(researcher, "barrier.refused") == [
        {"reason": "information-barrier", "barrier": InformationBarrier.objects.get().pk}
    ]
    assert refusals(researcher) == []


def test_an_archived_listed_room_is_refused_as_archived() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED)
    room_archive(actor=owner, room=room)
    room.refresh_from_db()
    before = written(room)

    with pytest.raises(PermissionDenied) as refused:
        room_join(actor=colleague, room=room)

    assert not isinstance(refused.value, RoomHiddenError)
    assert "archived" in str(refused.value)
    assert written(room) == before
    assert refusals(colleague) == [{"reason": "archived"}]
    assert room not in rooms_joinable(user=colleague)


def test_no_room_is_a_404_and_nothing_is_recorded() -> None:
    colleague = make_user()
    events_before = AuditEvent.objects.count()

    with pytest.raises(Http404):
        room_join(actor=colleague, room=None)

    assert AuditEvent.objects.count() == events_before


def test_an_account_deactivated_meanwhile_joins_nothing() -> None:
    # given a colleague whose account is deactivated after their request was read
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner, visibility=LISTED)
    User.objects.filter(pk=colleague.pk).update(is_active=False)
    before = written(room)

    # when the request (holding the older snapshot) joins
    with pytest.raises(RoomHiddenError):
        room_join(actor=colleague, room=room)

    # then the check under the person's lock refuses it
    assert written(room) == before
    assert refusals(colleague) == [{"reason": "inactive"}]


def test_joining_faster_than_the_membership_limit_is_refused(settings: Settings) -> None:
    settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT = (1, 60)
    owner, colleague = make_room_admin(), make_user()
    first = make_room(owner=owner, name="One", visibility=LISTED)
    second = make_room(owner=owner, name="Two", visibility=LISTED)
    room_join(actor=colleague, room=first)
    before = written(second)

    with pytest.raises(RateLimitedError):
        room_join(actor=colleague, room=second)

    assert written(second) == before


# --- visibility: set at creation, changed by owners -------------------------------------
def test_a_room_is_private_unless_created_listed() -> None:
    admin = make_room_admin()

    private = room_create(actor=admin, name="Desk")
    listed = room_create(actor=admin, name="Ideas", visibility=LISTED)

    assert private.visibility == Room.Visibility.PRIVATE
    assert listed.visibility == LISTED
    created = AuditEvent.objects.filter(action="room.created").latest("seq")
    assert created.extra["visibility"] == "listed"


def test_an_unknown_visibility_is_refused_and_nothing_is_made() -> None:
    admin = make_room_admin()

    with pytest.raises(ValidationError):
        room_create(actor=admin, name="Desk", visibility="public")

    assert not Room.objects.exists()


def test_an_owner_lists_a_room_and_makes_it_private_again_on_the_record() -> None:
    owner, colleague = make_room_admin(), make_user()
    room = make_room(owner=owner)
    assert room not in rooms_joinable(user=colleague)

    room_update(actor=owner, room=room, visibility=LISTED)
    assert room in rooms_joinable(user=colleague)
    room_update(actor=owner, room=room, visibility=Room.Visibility.PRIVATE)

    assert room not in rooms_joinable(user=colleague)
    updates = AuditEvent.objects.filter(action="room.updated", target_id=str(room.pk))
    assert [e.extra for e in updates.order_by("seq")] == [{"fields": ["visibility"]}] * 2


def test_only_an_owner_lists_a_room() -> None:
    owner, moderator = make_room_admin(), make_user()
    room = make_room(owner=owner)
    membership_add(actor=owner, room=room, user=moderator, role=Membership.Role.MODERATOR)

    with pytest.raises(PermissionDenied):
        room_update(actor=moderator, room=room, visibility=LISTED)

    assert Room.objects.get(pk=room.pk).visibility == Room.Visibility.PRIVATE
    assert not AuditEvent.objects.filter(action="room.updated").exists()


def test_a_direct_conversation_cannot_be_listed() -> None:
    alice, bob = make_user(), make_user()
    direct = direct_conversation_create(actor=alice, participants=[bob])

    # invalid input whoever asks, refused before the permission no one holds there (the
    # check constraint backs it)
    with pytest.raises(ValidationError) as refused:
        room_update(actor=alice, room=direct, visibility=LISTED)

    assert list(refused.value.message_dict) == ["visibility"]
    assert Room.objects.get(pk=direct.pk).visibility == Room.Visibility.PRIVATE
    assert not AuditEvent.objects.filter(action="room.updated").exists()
    assert not AuditEvent.objects.filter(action="room.access.denied").exists()


# --- the selector --------------------------------------------------------------------------
def test_the_joinable_rooms_are_listed_live_channels_one_is_not_in() -> None:
    owner, colleague = make_room_admin(), make_user()
    listed = make_room(owner=owner, name="Ideas", visibility=LISTED)
    make_room(owner=owner, name="Private")
    mine = make_room(owner=owner, name="Mine", members=(colleague,), visibility=LISTED)
    archived = make_room(owner=owner, name="Old", visibility=LISTED)
    room_archive(actor=owner, room=archived)
    direct_conversation_create(actor=owner, participants=[make_user()])

    found = list(rooms_joinable(user=colleague))

    assert found == [listed]
    assert found[0].member_count == 1  # type: ignore[attr-defined]
    assert mine not in found


def test_rooms_with_someone_across_a_wall_are_not_offered_on_either_side() -> None:
    # given a wall between research and trading, and listed rooms with each side in one
    owner, trader, researcher, other = make_room_admin(), make_user(), make_user(), make_user()
    wall(researcher, trader)
    traders = make_room(owner=owner, name="Trading floor", members=(trader,), visibility=LISTED)
    research = make_room(owner=owner, name="Research", members=(researcher,), visibility=LISTED)
    neutral = make_room(owner=owner, name="Lunch", visibility=LISTED)

    # then each side sees the neutral room only, and someone outside both sees all
    assert set(rooms_joinable(user=researcher)) == {neutral}
    assert set(rooms_joinable(user=trader)) == {neutral}
    assert set(rooms_joinable(user=other)) == {traders, research, neutral}


def test_someone_on_both_sides_of_a_wall_is_kept_from_either_side() -> None:
    # barrier_conflicts pairs them with anyone in either group, so the list does too
    owner, trader, researcher, both = make_room_admin(), make_user(), make_user(), make_user()
    wall(researcher, trader)
    both.groups.add(*Group.objects.filter(name__in=["Research", "Trading"]))
    research = make_room(owner=owner, name="Research", members=(researcher,), visibility=LISTED)
    neutral = make_room(owner=owner, name="Lunch", visibility=LISTED)

    assert set(rooms_joinable(user=both)) == {neutral}
    with pytest.raises(RoomHiddenError):
        room_join(actor=both, room=research)


def test_the_joinable_rooms_can_be_searched_by_name_or_topic() -> None:
    owner, colleague = make_room_admin(), make_user()
    rates = make_room(owner=owner, name="Rates ideas", visibility=LISTED)
    fx = make_room(owner=owner, name="FX", visibility=LISTED)
    room_update(actor=owner, room=fx, topic="EUR rates too")
    make_room(owner=owner, name="Equities", visibility=LISTED)

    assert set(rooms_joinable(user=colleague, query="RATES")) == {rates, fx}
