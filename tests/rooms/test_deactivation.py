"""A deactivated person in their rooms, and what a reactivation gives back.

Deactivation deletes the person's sealed room keys and makes each of their rooms start
a new epoch without them at its next content; their memberships and room roles stay,
dormant. Reactivation gives the memberships and roles back, but for reading the person
returns as a newcomer: the room's history rule decides what they read and which keys
they receive (docs/rooms.md, "Deactivation and reactivation").
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_deactivate, user_reactivate
from audit.models import AuditEvent
from rooms.models import Membership, Message, Room
from rooms.selectors import message_page
from rooms.services import (
    direct_conversation_create,
    membership_add,
    message_post,
    room_key_rotate,
)
from safechat.actions import Refused
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from tests.accounts.factories import grant_role, make_user
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db


def texts(reader: User, room: Room) -> list[str | None]:
    reader = User.objects.get(pk=reader.pk)
    return [m.text for m in reversed(message_page(reader=reader, room=room))]


def epochs_held(user: User, room: Room) -> list[int]:
    return sorted(
        SealedEpochKey.objects.filter(user=user, epoch__room=room).values_list(
            "epoch__number", flat=True
        )
    )


def last_event(action: str) -> dict[str, Any]:
    extra: dict[str, Any] = AuditEvent.objects.filter(action=action).latest("seq").extra
    return extra


@pytest.fixture
def security_admin() -> User:
    return grant_role(make_user(), Role.SECURITY_ADMIN)


def test_a_deactivated_member_loses_their_keys_and_returns_as_a_newcomer(
    security_admin: User,
) -> None:
    # Given a room hiding history, with a co-owner who reads it
    owner, leaver = make_user(), make_user(username="leaver")
    room = make_room(owner=owner, members=(leaver,), role=Membership.Role.OWNER)
    message_post(sender=owner, room=room, text="before they left")
    assert texts(leaver, room) == ["before they left"]

    # When they are deactivated, the room moves on and they come back
    user_deactivate(actor=security_admin, user=leaver)
    held_while_away = epochs_held(leaver, room)
    room_key_rotate(actor=owner, room=room)
    message_post(sender=owner, room=room, text="posted while leaver was deactivated")
    held_after_new_epochs = epochs_held(leaver, room)
    user_reactivate(actor=security_admin, user=leaver)

    # Then no key stayed with them or reached them while away, their room role came back,
    # and they read nothing from before their return (as a member re-added would)
    assert held_while_away == []
    assert held_after_new_epochs == []
    assert Membership.objects.get(room=room, user=leaver).role == Membership.Role.OWNER
    assert texts(leaver, room) == []
    message_post(sender=owner, room=room, text="welcome back")
    assert texts(leaver, room) == ["welcome back"]


def test_the_next_post_after_a_deactivation_starts_an_epoch_without_them(
    security_admin: User,
) -> None:
    owner, stays, leaver = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(stays, leaver))
    message_post(sender=owner, room=room, text="one")
    before = RoomEpoch.objects.filter(room=room).count()

    user_deactivate(actor=security_admin, user=leaver)
    message_post(sender=stays, room=room, text="two")
    message_post(sender=owner, room=room, text="three")

    epochs = list(RoomEpoch.objects.filter(room=room).order_by("number"))
    assert len(epochs) == before + 1  # one new epoch, however many posts follow
    newest = epochs[-1]
    assert newest.reason == RoomEpoch.Reason.MEMBER_DEACTIVATED
    holders = set(
        SealedEpochKey.objects.filter(epoch=newest, user__isnull=False).values_list(
            "user_id", flat=True
        )
    )
    assert holders == {owner.pk, stays.pk}
    assert Message.objects.get(room=room, seq=2).epoch == newest.number
    assert Room.objects.get(pk=room.pk).rekey_reason == ""
    assert texts(stays, room) == ["one", "two", "three"]


def test_a_deactivation_records_the_rooms_and_keys_it_took(security_admin: User) -> None:
    owner, leaver = make_user(), make_user()
    first = make_room(owner=owner, members=(leaver,), name="First")
    second = make_room(owner=owner, members=(leaver,), name="Second")
    held = len(epochs_held(leaver, first)) + len(epochs_held(leaver, second))

    user_deactivate(actor=security_admin, user=leaver)

    extra = last_event("account.deactivated")
    assert extra["rooms"] == 2
    assert extra["room_keys_revoked"] == held > 0
    assert SealedEpochKey.objects.filter(user=leaver).count() == 0
    assert {r.rekey_reason for r in Room.objects.filter(pk__in=[first.pk, second.pk])} == {
        RoomEpoch.Reason.MEMBER_DEACTIVATED
    }


def test_a_refused_deactivation_takes_no_key(security_admin: User) -> None:
    # the only owner of a channel is not deactivated (sole owner), and keeps every key
    owner = make_user()
    room = make_room(owner=owner)
    held = epochs_held(owner, room)

    with pytest.raises(Refused):
        user_deactivate(actor=security_admin, user=owner)

    assert epochs_held(owner, room) == held != []
    assert Room.objects.get(pk=room.pk).rekey_reason == ""


def test_a_reactivated_member_of_a_room_showing_history_reads_it_all(
    security_admin: User,
) -> None:
    # Given a room that shows history to newcomers
    owner, leaver = make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,), history_visible=True)
    message_post(sender=owner, room=room, text="before")
    user_deactivate(actor=security_admin, user=leaver)
    message_post(sender=owner, room=room, text="while away")

    # When they come back
    user_reactivate(actor=security_admin, user=leaver)

    # Then they receive what any newcomer would: every unshredded epoch, all the history
    all_epochs = sorted(RoomEpoch.objects.filter(room=room).values_list("number", flat=True))
    assert epochs_held(leaver, room) == all_epochs
    assert texts(leaver, room) == ["before", "while away"]
    extra = last_event("account.reactivated")
    assert extra == {"rooms": 1, "room_keys_granted": len(all_epochs)}


def test_a_reactivated_member_of_a_room_hiding_history_gets_no_earlier_key(
    security_admin: User,
) -> None:
    owner, leaver = make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,))
    message_post(sender=owner, room=room, text="before")
    user_deactivate(actor=security_admin, user=leaver)
    message_post(sender=owner, room=room, text="while away")

    user_reactivate(actor=security_admin, user=leaver)

    # nothing encrypted so far is under a key they get; the next content starts one
    assert epochs_held(leaver, room) == []
    membership = Membership.objects.get(room=room, user=leaver)
    assert membership.visible_from_seq == Room.objects.get(pk=room.pk).message_seq == 2
    assert Room.objects.get(pk=room.pk).rekey_reason == RoomEpoch.Reason.MEMBER_JOINED
    message_post(sender=owner, room=room, text="after")
    assert texts(leaver, room) == ["after"]
    assert last_event("account.reactivated") == {"rooms": 1, "room_keys_granted": 0}


def test_a_refused_reactivation_gives_nothing_back() -> None:
    owner, leaver, member = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,), history_visible=True)
    user_deactivate(actor=grant_role(make_user(), Role.SECURITY_ADMIN), user=leaver)

    with pytest.raises(Refused):
        user_reactivate(actor=member, user=leaver)

    assert not User.objects.get(pk=leaver.pk).is_active
    assert epochs_held(leaver, room) == []


def test_a_deactivated_participant_of_a_direct_conversation_gets_no_new_key(
    security_admin: User,
) -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    message_post(sender=other, room=direct, text="hi")

    user_deactivate(actor=security_admin, user=starter)
    message_post(sender=other, room=direct, text="are you there?")

    assert epochs_held(starter, direct) == []
    newest = RoomEpoch.objects.filter(room=direct).latest("number")
    assert newest.reason == RoomEpoch.Reason.MEMBER_DEACTIVATED
    assert Message.objects.filter(room=direct).latest("seq").epoch == newest.number


def test_a_newcomer_added_while_a_member_is_away_holds_no_key_of_theirs(
    security_admin: User,
) -> None:
    # an epoch started for a newcomer is sealed to the active members only
    owner, leaver, newcomer = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,))
    message_post(sender=owner, room=room, text="before")
    user_deactivate(actor=security_admin, user=leaver)
    membership_add(actor=owner, room=room, user=newcomer)
    message_post(sender=owner, room=room, text="after")

    assert epochs_held(leaver, room) == []
    assert texts(newcomer, room) == ["after"]


@pytest.mark.django_db(transaction=True)
@postgresql_only("the deactivation and the post lock the same room row")
def test_a_post_at_the_instant_of_a_deactivation_is_never_under_a_key_they_hold(
    settings: Any,
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    for round_ in range(8):
        # given a room whose next post starts a new epoch (a member joined), and a member
        owner, leaver = make_room_admin(), make_user()
        room = make_room(owner=owner, members=(leaver,), name=f"r{round_}")
        message_post(sender=owner, room=room, text="first")
        membership_add(actor=owner, room=room, user=make_user())

        # when the owner posts while the member is deactivated
        outcomes = run_together(
            partial(message_post, sender=owner, room=room, text="at the same instant"),
            partial(user_deactivate, actor=admin, user=leaver),
        )

        # then both went through, and the deactivated member holds no key of the room
        assert [o.error for o in outcomes] == [None, None]
        assert epochs_held(leaver, room) == []
        # and whatever was posted after their deactivation is under an epoch they never held
        message_post(sender=owner, room=room, text="later")
        newest = RoomEpoch.objects.filter(room=room).latest("number")
        assert not SealedEpochKey.objects.filter(epoch=newest, user=leaver).exists()
