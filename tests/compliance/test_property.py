"""A property test over random message ages, edits, policies, holds and key epochs: the
job purges exactly what has expired and is not held, and nothing else; every epoch it
shredded had nothing left and no hold, every epoch emptied and unheld is shredded, and
what stays still decrypts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from audit.models import AuditEvent
from compliance.models import MessageTombstone, RetentionRun
from compliance.selectors import day_start, epoch_held
from compliance.services import (
    RetentionReport,
    legal_hold_place,
    retention_apply,
    retention_policy_set,
)
from rooms.models import Message, MessageRevision, Room
from rooms.selectors import message_view
from rooms.services import direct_conversation_create, message_edit, message_post, room_key_rotate
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from safechat.keyring.services import clear_key_caches
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

POLICIES = st.sampled_from([None, 10, 30, 60])


@dataclass(frozen=True)
class Post:
    room: int  # index into the example's rooms (the last one is a direct conversation)
    sender: int  # 0, 1 or 2 (a direct conversation's is 0 or 1)
    age: int  # days, plus half a day: never on a boundary
    edited: int | None  # days ago, at most ``age``
    rotate_first: bool


@dataclass(frozen=True)
class Hold:
    room: int | None
    custodian: int | None
    span: tuple[int, int] | None  # (from days ago, to days ago), from >= to


posts = st.builds(
    Post,
    room=st.integers(0, 2),
    sender=st.integers(0, 2),
    age=st.integers(0, 90),
    edited=st.none() | st.integers(0, 90),
    rotate_first=st.booleans(),
)
holds = st.builds(
    Hold,
    room=st.none() | st.integers(0, 2),
    custodian=st.none() | st.integers(0, 2),
    span=st.none() | st.tuples(st.integers(0, 90), st.integers(0, 90)),
)


def ago(now: datetime, days: float) -> datetime:
    return now - timedelta(days=days)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policies=st.tuples(POLICIES, POLICIES, POLICIES),
    script=st.lists(posts, min_size=1, max_size=12),
    hold_list=st.lists(holds, max_size=3),
)
def test_exactly_what_expired_and_is_not_held_is_purged(
    policies: tuple[int | None, int | None, int | None],
    script: list[Post],
    hold_list: list[Hold],
) -> None:
    # given two channels and a direct conversation among three people, with policies
    officer = make_officer()
    people = [make_user(), make_user(), make_user()]
    rooms: list[Room] = [
        make_room(owner=people[0], members=(people[1], people[2])),
        make_room(owner=people[0], members=(people[1], people[2])),
        direct_conversation_create(actor=people[0], participants=[people[1]]),
    ]
    for room, days in zip(rooms, policies, strict=True):
        retention_policy_set(actor=officer, room=room, keep_days=days)
    now = timezone.now()
    written: list[tuple[Message, Post]] = []
    for post in script:
        room = rooms[post.room]
        sender = people[post.sender if post.room < 2 else post.sender % 2]
        if post.rotate_first and post.room < 2:
            room_key_rotate(actor=people[0], room=room)
        message = message_post(sender=sender, room=room, text=f"m{len(written)}")
        sent = ago(now, post.age + 0.5)
        edited = None
        if post.edited is not None:
            message_edit(actor=sender, message=message, text="edited")
            edited = ago(now, min(post.edited, post.age) + 0.25)
        Message.objects.filter(pk=message.pk).update(created_at=sent, edited_at=edited)
        written.append((Message.objects.get(pk=message.pk), post))
    placed = []
    for hold in hold_list:
        if hold.room is None and hold.custodian is None:
            continue
        starts_on = ends_on = None
        if hold.span is not None:
            first, last = max(hold.span), min(hold.span)
            starts_on, ends_on = ago(now, first).date(), ago(now, last).date()
        legal_hold_place(
            actor=officer,
            matter="M",
            reason="r",
            rooms=[rooms[hold.room]] if hold.room is not None else [],
            custodians=[people[hold.custodian]] if hold.custodian is not None else [],
            starts_on=starts_on,
            ends_on=ends_on,
        )
        placed.append((hold, starts_on, ends_on))

    def held(message: Message, post: Post) -> bool:
        last_written = message.edited_at or message.created_at
        for hold, starts_on, ends_on in placed:
            covers = hold.room is not None and rooms[hold.room].pk == message.room_id
            if hold.custodian is not None:
                custodian = people[hold.custodian]
                covers = covers or message.sender_id == custodian.pk
                covers = covers or (post.room == 2 and hold.custodian in (0, 1))
            if not covers:
                continue
            if ends_on is not None and message.created_at >= day_start(ends_on) + timedelta(days=1):
                continue
            if starts_on is not None and last_written < day_start(starts_on):
                continue
            return True
        return False

    def expired(message: Message, post: Post) -> bool:
        days = policies[post.room]
        last_written = message.edited_at or message.created_at
        return days is not None and last_written < ago(now, days)

    # when a dry run counts, then the job runs
    before = _state()
    dry = retention_apply(dry_run=True)
    after_dry = _state()
    report = retention_apply(batch_size=4)

    # then the dry run changed nothing but its own record, and said exactly what went
    assert after_dry == {**before, "runs": before["runs"] + 1, "events": before["events"] + 1}
    assert _by_room(dry) == _by_room(report)

    # then exactly the expired, unheld messages are gone
    left = set(Message.objects.filter(room__in=rooms).values_list("pk", flat=True))
    for message, post in written:
        should_go = expired(message, post) and not held(message, post)
        assert (message.pk not in left) == should_go, (post, message.pk)
    # and no epoch with something left is shredded; every emptied, unheld one is
    clear_key_caches()
    for room in rooms:
        for epoch in RoomEpoch.objects.filter(room=room):
            has_content = Message.objects.filter(room=room, epoch=epoch.number).exists() or (
                Message.objects.filter(room=room, revisions__epoch=epoch.number).exists()
            )
            if has_content:
                assert epoch.shredded_at is None
            elif epoch.message_count and not _held_epoch(room, epoch.number):
                assert epoch.shredded_at is not None
    reader: User = people[0]  # an owner or participant everywhere: holds every epoch
    for message, _post in written:
        if message.pk in left:
            view = message_view(reader=reader, message=Message.objects.get(pk=message.pk))
            assert view.text is not None


def _state() -> dict[str, Any]:
    """What a dry run must leave as it found (besides its own run row and audit event)."""
    return {
        "messages": sorted(Message.objects.values_list("pk", "edited_at", "deleted_at")),
        "revisions": MessageRevision.objects.count(),
        "tombstones": MessageTombstone.objects.count(),
        "shredded": RoomEpoch.objects.filter(shredded_at__isnull=False).count(),
        "sealed": SealedEpochKey.objects.count(),
        "leases": sorted(
            RetentionRun.objects.filter(dry_run=False).values_list(
                "pk", "state", "lease_expires_at"
            )
        ),
        "runs": RetentionRun.objects.count(),
        "events": AuditEvent.objects.count(),
    }


def _by_room(report: RetentionReport) -> list[tuple[object, ...]]:
    return [
        (r.room_id, r.messages, r.revisions, r.files, r.epochs, r.oldest, r.newest)
        for r in report.rooms
    ]


def _held_epoch(room: Room, number: int) -> bool:
    return epoch_held(room.pk, number)
