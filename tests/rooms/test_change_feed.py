"""The change feed (``GET /api/v1/changes/``): every change in commit order, access decided
when it is read, and, on PostgreSQL with real threads, no committed entry ever skipped."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services import api_token_create
from audit.actions import AuditAction
from audit.services import audit_record
from rooms.models import RoomChange
from rooms.selectors import changes_after
from rooms.services import (
    membership_add,
    membership_remove,
    membership_role_change,
    message_delete,
    message_edit,
    message_post,
)
from rooms.services._changes import room_change_append
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

FEED = "/api/v1/changes/"


def _client(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def _kinds(body: dict[str, Any]) -> list[tuple[str, int | None, int | None]]:
    return [(e["kind"], e["message_id"], e["user_id"]) for e in body["results"]]


@pytest.mark.django_db
def test_a_member_hears_of_every_change_in_order_with_the_message_as_it_is_now() -> None:
    # given a room, a member, and a cursor taken before anything happened there
    owner, member, newcomer = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    cursor = _client(member).get(FEED).json()["next_after"]

    # when messages are posted, edited and deleted and the membership changes
    first = message_post(sender=owner, room=room, text="first")
    second = message_post(sender=member, room=room, text="second")
    message_edit(actor=owner, message=first, text="first, edited")
    message_delete(actor=member, message=second)
    membership_add(actor=owner, room=room, user=newcomer)
    membership_role_change(actor=owner, room=room, member=newcomer, role="read_only")
    membership_remove(actor=owner, room=room, member=newcomer)
    body = _client(member).get(f"{FEED}?after={cursor}").json()

    # then the member hears of each, in order, once, with the message as it is now
    assert _kinds(body) == [
        ("message.created", first.pk, None),
        ("message.created", second.pk, None),
        ("message.edited", first.pk, None),
        ("message.deleted", second.pk, None),
        ("member.added", None, newcomer.pk),
        ("member.role_changed", None, newcomer.pk),
        ("member.removed", None, newcomer.pk),
    ]
    entries = body["results"]
    assert entries[0]["message"]["text"] == "first, edited"
    assert entries[1]["message"] is None  # deleted since: its entries say so, no more
    assert entries[3]["message"] is None
    assert entries[4]["role"] == "member"
    assert entries[5]["role"] == "read_only"
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert body["next_after"] == entries[-1]["id"]
    assert body["has_more"] is False
    # and asking again with the new cursor gives nothing new
    again = _client(member).get(f"{FEED}?after={body['next_after']}").json()
    assert again == {"results": [], "has_more": False, "next_after": body["next_after"]}


@pytest.mark.django_db
def test_the_feed_pages_with_limit_and_has_more() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    start = _client(owner).get(FEED).json()["next_after"]
    posted = [message_post(sender=owner, room=room, text=f"m{i}").pk for i in range(5)]

    seen: list[int] = []
    cursor, rounds = start, 0
    while True:
        body = _client(owner).get(f"{FEED}?after={cursor}&limit=2").json()
        seen += [e["message_id"] for e in body["results"]]
        cursor, rounds = body["next_after"], rounds + 1
        if not body["has_more"]:
            break

    assert seen == posted
    assert rounds == 3


@pytest.mark.django_db
def test_access_is_decided_when_the_feed_is_read() -> None:
    # given a member who saw a message, then was removed, and an outsider
    owner, member, outsider = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    before = message_post(sender=owner, room=room, text="while a member")
    membership_remove(actor=owner, room=room, member=member)
    after = message_post(sender=owner, room=room, text="after the removal")

    # when each reads the feed from the start
    as_member = _client(member).get(FEED).json()
    as_outsider = _client(outsider).get(FEED).json()

    # then the removed member hears only of their own removal from that room
    assert _kinds(as_member) == [("member.removed", None, member.pk)]
    ids = {e["message_id"] for e in as_member["results"]}
    assert before.pk not in ids
    assert after.pk not in ids
    # and the outsider hears nothing at all
    assert as_outsider["results"] == []


@pytest.mark.django_db
def test_history_rules_apply_to_the_feed() -> None:
    # given a room hiding history, a message, then a newcomer
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    early = message_post(sender=owner, room=room, text="before you came")
    membership_add(actor=owner, room=room, user=newcomer)
    late = message_post(sender=owner, room=room, text="after you came")
    message_edit(actor=owner, message=early, text="still before you came")

    # when the newcomer reads the feed from the start
    body = _client(newcomer).get(FEED).json()

    # then nothing of the earlier message reaches them, edits included
    messages = [e["message_id"] for e in body["results"] if e["message_id"]]
    assert messages == [late.pk]
    assert "before you came" not in str(body)


@pytest.mark.django_db
@pytest.mark.parametrize("messages_before", [1, 0])
def test_who_came_and_went_before_one_joined_a_room_hiding_history_is_not_told(
    messages_before: int,
) -> None:
    # given a room hiding history, where someone was added, promoted and removed (and
    # messages posted, or none), then a newcomer who joins, and someone added after them
    owner, former, newcomer, later = make_user(), make_user(), make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    for i in range(messages_before):
        message_post(sender=owner, room=room, text=f"before you came {i}")
    membership_add(actor=owner, room=room, user=former)
    membership_role_change(actor=owner, room=room, member=former, role="moderator")
    membership_remove(actor=owner, room=room, member=former)
    membership_add(actor=owner, room=room, user=newcomer)
    membership_add(actor=owner, room=room, user=later)

    # when the newcomer reads the feed from the start
    body = _client(newcomer).get(FEED).json()

    # then it tells of their own joining and what came after, nothing from before it
    # (the member list never showed who had been in the room; the feed told it all)
    assert _kinds(body) == [
        ("member.added", None, newcomer.pk),
        ("member.added", None, later.pk),
    ]
    # while a member from the start hears all of it
    assert ("member.removed", None, former.pk) in _kinds(_client(owner).get(FEED).json())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "parameter"),
    [("after=", "after"), ("after=-1", "after"), ("limit=0", "limit"), ("limit=101", "limit")],
)
def test_bad_feed_cursors_are_refused(query: str, parameter: str) -> None:
    response = _client(make_user()).get(f"{FEED}?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["parameter"] == parameter


@pytest.mark.django_db
def test_a_read_token_reads_the_feed_and_anonymous_callers_do_not() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="hello")
    _token, secret = api_token_create(actor=owner, name="poller", scope=ApiToken.Scope.READ)

    with_token = Client().get(FEED, headers={"Authorization": f"Bearer {secret}"})
    anonymous = Client().get(FEED)

    assert with_token.status_code == 200
    assert with_token["Cache-Control"] == "no-store"
    assert [e["kind"] for e in with_token.json()["results"]][-1] == "message.created"
    assert anonymous.status_code == 401


# --- commit order on PostgreSQL -------------------------------------------------------


def _read_until(done: threading.Event) -> list[int]:
    """Poll the log as the feed does (cursor = the last id seen) until ``done``, then once
    more; every id seen, in order."""
    seen: list[int] = []
    cursor = 0
    while True:
        finished = done.is_set()  # read before polling: the last poll follows every commit
        ids = list(
            RoomChange.objects.filter(pk__gt=cursor).order_by("pk").values_list("pk", flat=True)
        )
        seen += ids
        cursor = max([cursor, *ids])
        if finished:
            return seen
        time.sleep(0.001)


def _late_commit_round(room_id: int) -> tuple[list[int], list[int]]:
    """A slow writer whose entry would get the smaller id but commit last, three quick
    writers behind it, and a reader polling all along: (ids written, ids seen)."""
    done = threading.Event()
    left = [4]
    lock = threading.Lock()

    def write(delay_before: float, hold: float) -> int:
        time.sleep(delay_before)
        try:
            with transaction.atomic():
                # as every service does: the audit append (the chain lock), then the entry
                audit_record(actor=None, action=AuditAction.MESSAGE_POSTED, extra={})
                entry = room_change_append(room_id=room_id, kind=RoomChange.Kind.MESSAGE_CREATED)
                time.sleep(hold)  # a slow commit: the others try to write meanwhile
            return entry.pk
        finally:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    outcomes = run_together(
        partial(write, 0.0, 0.3),
        partial(write, 0.05, 0.0),
        partial(write, 0.06, 0.0),
        partial(write, 0.07, 0.0),
        partial(_read_until, done),
    )
    assert [o.error for o in outcomes] == [None] * 5
    return sorted(o.value for o in outcomes[:4]), outcomes[4].value


@postgresql_only("sequence values are allocated at insert, not at commit")
@pytest.mark.django_db(transaction=True)
def test_an_entry_that_commits_late_is_never_skipped_by_a_reader() -> None:
    room = make_room(owner=make_user())
    for _round in range(3):
        # given a slow writer, quick ones behind it, and a polling reader; when they run
        written, seen = _late_commit_round(room.pk)

        # then the reader saw every committed entry, once, in id order
        assert set(written) <= set(seen), (written, seen)
        assert seen == sorted(set(seen))


@postgresql_only("concurrent posts and membership changes commit in any order")
@pytest.mark.django_db(transaction=True)
def test_a_poller_misses_no_post_made_by_concurrent_writers() -> None:
    # given two rooms the poller is in, and four writers in them
    poller = make_user()
    writers = [make_user() for _ in range(4)]
    rooms = [make_room(owner=poller, members=tuple(writers)) for _ in range(2)]
    done = threading.Event()
    left = [len(writers)]
    lock = threading.Lock()

    def post(index: int) -> list[int]:
        try:
            return [
                message_post(
                    sender=writers[index], room=rooms[(index + n) % 2], text=f"{index}-{n}"
                ).pk
                for n in range(8)
            ]
        finally:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    # when they post at once while the poller follows the feed
    start = RoomChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    outcomes = run_together(*(partial(post, i) for i in range(4)), partial(_poll, done, poller))

    # then every message reached the poller, in commit order, none skipped
    assert [o.error for o in outcomes] == [None] * 5
    posted = {pk for o in outcomes[:4] for pk in o.value}
    seen = [
        e.message_id
        for e in outcomes[4].value
        if e.id > start and e.kind == RoomChange.Kind.MESSAGE_CREATED
    ]
    assert set(seen) == posted
    assert len(seen) == len(posted)


def _poll(done: threading.Event, reader: User) -> list[Any]:
    entries: list[Any] = []
    cursor = 0
    while True:
        finished = done.is_set()
        page = changes_after(reader=reader, after=cursor, limit=5)
        entries += page.items
        cursor = page.next_after
        if finished and not page.has_more:
            return entries
        time.sleep(0.001)
