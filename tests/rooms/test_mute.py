"""Muting a room: the member's own setting (``membership_mute_set``), on the record."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import TestCase
from pytest_django import Settings

from accounts.models import User
from audit.models import AuditEvent
from rooms.errors import RateLimitedError
from rooms.models import Membership, Room
from rooms.selectors import room_list_for_user
from rooms.services import membership_mute_set, room_archive
from safechat import events
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

MUTED = "room.member.mute_changed"


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    delivered: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "deliver", lambda group, msg: delivered.append((group, msg)))
    return delivered


def mute_of(user: User, room: Room) -> str:
    return Membership.objects.get(room=room, user=user).mute


def test_a_member_mutes_a_room_on_the_record_and_their_tabs_hear_it(
    sent: list[tuple[str, dict[str, Any]]],
) -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))

    with TestCase.captureOnCommitCallbacks(execute=True):
        membership = membership_mute_set(actor=member, room=room, mute="messages")

    assert membership.mute == mute_of(member, room) == "messages"
    event = AuditEvent.objects.filter(action=MUTED).get()
    assert (event.actor_id, event.target_id) == (member.pk, str(room.pk))
    assert event.extra == {"from": "off", "to": "messages"}
    assert sent == [
        (
            f"user.{member.pk}",
            {"type": "user.event", "event": "room.muted", "room_id": room.pk, "mute": "messages"},
        )
    ]
    # the room list says it to them, and only to them
    assert room_list_for_user(user=member).get(pk=room.pk).mute == "messages"  # type: ignore[attr-defined]
    assert room_list_for_user(user=owner).get(pk=room.pk).mute == "off"  # type: ignore[attr-defined]


def test_muting_all_then_unmuting_records_each_change_and_no_change_is_not_recorded() -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))

    membership_mute_set(actor=member, room=room, mute="all")
    membership_mute_set(actor=member, room=room, mute="all")
    membership_mute_set(actor=member, room=room, mute="off")

    assert mute_of(member, room) == "off"
    changes = AuditEvent.objects.filter(action=MUTED).order_by("seq")
    assert [e.extra for e in changes] == [
        {"from": "off", "to": "all"},
        {"from": "all", "to": "off"},
    ]


def test_a_read_only_member_mutes_an_archived_room() -> None:
    # the member's own setting, like a read marker: no right to post is needed
    owner, reader = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(reader,), role=Membership.Role.READ_ONLY)
    room_archive(actor=owner, room=room)
    room.refresh_from_db()

    membership_mute_set(actor=reader, room=room, mute="all")

    assert mute_of(reader, room) == "all"


def test_someone_outside_the_room_mutes_nothing_and_is_refused_on_the_record(
    sent: list[tuple[str, dict[str, Any]]],
) -> None:
    owner, stranger = make_room_admin(), make_user()
    room = make_room(owner=owner)

    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(PermissionDenied):
        membership_mute_set(actor=stranger, room=room, mute="all")

    assert not Membership.objects.filter(room=room, user=stranger).exists()
    assert not AuditEvent.objects.filter(action=MUTED).exists()
    denied = AuditEvent.objects.filter(action="room.access.denied", actor_id=stranger.pk).get()
    assert denied.extra == {"reason": "missing view_room"}
    assert sent == []


def test_an_unknown_setting_is_refused_and_nothing_changes() -> None:
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))

    with pytest.raises(ValidationError):
        membership_mute_set(actor=member, room=room, mute="loud")

    assert mute_of(member, room) == "off"
    assert not AuditEvent.objects.filter(action=MUTED).exists()


def test_muting_faster_than_the_settings_limit_is_refused(settings: Settings) -> None:
    settings.SAFECHAT_ROOM_SETTINGS_RATE_LIMIT = (1, 60)
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))
    membership_mute_set(actor=member, room=room, mute="all")

    with pytest.raises(RateLimitedError):
        membership_mute_set(actor=member, room=room, mute="off")

    assert mute_of(member, room) == "all"
    assert AuditEvent.objects.filter(action=MUTED).count() == 1
