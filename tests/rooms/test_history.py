"""History the way people read the setting.

"New members can read earlier messages" off: a newcomer sees nothing posted before they
joined, and a member removed and added again sees nothing from before their return; the
keys hold it too (they never receive a key that protects earlier messages). Either way,
unread counts start at the moment of joining.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import Client

from accounts.models import User
from rooms.models import Membership, Room
from rooms.selectors import message_get_for_user, message_page, room_list_for_user
from rooms.services import membership_add, membership_remove, message_post, room_update
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def texts(reader: User, room: Room) -> list[str | None]:
    return [m.text for m in reversed(message_page(reader=reader, room=room))]


def unread(reader: User, room: Room) -> int:
    return int(room_list_for_user(user=reader).get(pk=room.pk).unread)  # type: ignore[attr-defined]


def epochs_held(user: User, room: Room) -> list[int]:
    return sorted(
        SealedEpochKey.objects.filter(user=user, epoch__room=room).values_list(
            "epoch__number", flat=True
        )
    )


def test_a_newcomer_to_a_room_hiding_history_sees_only_what_follows_their_joining() -> None:
    # Given a room that hides history, with a conversation in it
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    message_post(sender=owner, room=room, text="before: the client's position")

    # When someone joins and the conversation goes on
    membership_add(actor=owner, room=room, user=newcomer)
    assert texts(newcomer, room) == []
    message_post(sender=owner, room=room, text="after: welcome")

    # Then they read only what followed, with a key that protects nothing earlier
    assert texts(newcomer, room) == ["after: welcome"]
    assert texts(owner, room) == ["before: the client's position", "after: welcome"]
    assert epochs_held(newcomer, room) == [2]
    assert RoomEpoch.objects.get(room=room, number=2).reason == "member-joined"
    assert unread(newcomer, room) == 1


def test_a_member_added_again_sees_nothing_from_while_they_were_away() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), history_visible=False)
    message_post(sender=owner, room=room, text="one")
    membership_remove(actor=owner, room=room, member=member)
    message_post(sender=owner, room=room, text="two, while away")

    membership_add(actor=owner, room=room, user=member)
    message_post(sender=owner, room=room, text="three, back")

    assert texts(member, room) == ["three, back"]
    assert unread(member, room) == 1


def test_a_member_added_again_to_a_room_hiding_history_no_longer_reads_what_they_read_before() -> (
    None
):
    # given a member who read "one", then was removed
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), history_visible=False)
    one = message_post(sender=owner, room=room, text="one")
    assert texts(member, room) == ["one"]
    membership_remove(actor=owner, room=room, member=member)

    # when they are added again (the room still hides history)
    membership_add(actor=owner, room=room, user=member)

    # then, as decided (docs/rooms.md, "A member removed and added again"), they return as
    # a newcomer: what they read before their removal is gone from every path, and they
    # hold no key that protects it
    assert texts(member, room) == []
    with pytest.raises(Http404):
        message_get_for_user(user=member, message_id=one.pk)
    assert one.epoch not in epochs_held(member, room)
    assert texts(owner, room) == ["one"]


def test_a_member_added_again_to_a_room_showing_history_reads_it_all_again() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), history_visible=True)
    message_post(sender=owner, room=room, text="one")
    membership_remove(actor=owner, room=room, member=member)
    message_post(sender=owner, room=room, text="two, while away")

    membership_add(actor=owner, room=room, user=member)

    assert texts(member, room) == ["one", "two, while away"]
    assert unread(member, room) == 0


def test_showing_history_before_adding_someone_again_gives_them_the_history_back() -> None:
    # given a member removed from a room hiding history
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), history_visible=False)
    message_post(sender=owner, room=room, text="one")
    membership_remove(actor=owner, room=room, member=member)

    # when the owner shows history, then adds them again
    room_update(actor=owner, room=room, history_visible=True)
    membership_add(actor=owner, room=room, user=member)

    # then they read what they read before (and what was posted while they were away)
    assert texts(member, room) == ["one"]


def test_a_newcomer_to_a_room_showing_history_reads_it_all_with_nothing_unread() -> None:
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=True)
    message_post(sender=owner, room=room, text="before")

    membership_add(actor=owner, room=room, user=newcomer)

    assert texts(newcomer, room) == ["before"]
    assert unread(newcomer, room) == 0
    message_post(sender=owner, room=room, text="after")
    assert unread(newcomer, room) == 1


def test_many_joining_at_once_cost_one_new_epoch() -> None:
    owner = make_user()
    room = make_room(owner=owner, history_visible=False)
    message_post(sender=owner, room=room, text="before")
    joiners = [make_user() for _ in range(3)]

    for person in joiners:
        membership_add(actor=owner, room=room, user=person)
    message_post(sender=owner, room=room, text="after")
    message_post(sender=owner, room=room, text="and again")

    assert RoomEpoch.objects.filter(room=room).count() == 2
    for person in joiners:
        assert texts(person, room) == ["after", "and again"]
    assert Room.objects.get(pk=room.pk).rekey_reason == ""


def test_joining_a_room_with_nothing_posted_yet_starts_no_epoch() -> None:
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)

    membership_add(actor=owner, room=room, user=newcomer)
    message_post(sender=owner, room=room, text="first")

    assert RoomEpoch.objects.filter(room=room).count() == 1
    assert texts(newcomer, room) == ["first"]
    assert Room.objects.get(pk=room.pk).rekey_reason == ""


def test_a_message_from_before_joining_is_not_found_on_any_path() -> None:
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    earlier = message_post(sender=owner, room=room, text="before")
    membership_add(actor=owner, room=room, user=newcomer)
    client = Client()
    sign_in_client(client, newcomer, verified=True)

    with pytest.raises(Http404):
        message_get_for_user(user=newcomer, message_id=earlier.pk)
    with pytest.raises(ValidationError):
        message_post(sender=newcomer, room=room, text="re", parent_id=earlier.pk)
    listed = client.get(f"/api/v1/rooms/{room.pk}/messages/").json()
    page = client.get("/rooms/", {"room": room.pk}).content.decode()

    assert listed["results"] == []
    assert "can no longer be read" not in page
    assert "before" not in page.split('id="message-list"')[1].split("</ol>")[0]
    assert Membership.objects.get(room=room, user=newcomer).visible_from_seq == 1
