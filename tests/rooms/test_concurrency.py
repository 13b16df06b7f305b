"""Requests that arrive together: no race past a rule, no deadlock, no double write.

Each test releases real threads at the same instant (each with its own database
connection) and repeats enough rounds to fail on code that checks before it locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from accounts.services import api_token_create
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.errors import RateLimitedError, RoomHiddenError, UnreachableError
from rooms.models import Membership, Message, Reaction, Room
from rooms.services import (
    barrier_create,
    barrier_delete,
    membership_add,
    membership_remove,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    read_marker_set,
    room_barrier_violations,
    room_join,
)
from rooms.services.barriers import user_groups_change
from safechat import events
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from safechat.ratelimit import Rate, rate_hit
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db(transaction=True)


def _security_admin() -> User:
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    return User.objects.get(pk=admin.pk)


def _walled() -> tuple[Group, Group]:
    research, _ = Group.objects.get_or_create(name="research")
    trading, _ = Group.objects.get_or_create(name="trading")
    barrier_create(actor=_security_admin(), group_a=research, group_b=trading, reason="MAR")
    return research, trading


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every event published, by name, from any thread (sent after its commit)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(group: str, message: dict[str, Any]) -> None:
        sent.append((message["event"], {k: v for k, v in message.items() if k != "type"}))

    monkeypatch.setattr(events, "deliver", record)
    return sent


def _events(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


# --- 1. the barrier raced ---------------------------------------------------------------
ROOMS_RACED = 8


def test_two_people_a_barrier_separates_added_at_once_never_both_join(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    # given a barrier between research and trading, and a trader and a researcher
    research, trading = _walled()
    trader, researcher = make_user(username="trader"), make_user(username="researcher")
    trader.groups.add(trading)
    researcher.groups.add(research)
    owner = make_room_admin()
    rooms = [make_room(owner=owner, name=f"desk {i}") for i in range(ROOMS_RACED)]
    broadcasts.clear()
    added_before = _events("room.member.added")

    # when the owner adds both at the same instant, in each of eight fresh rooms
    outcomes = [
        run_together(
            partial(membership_add, actor=owner, room=room, user=trader),
            partial(membership_add, actor=owner, room=room, user=researcher),
        )
        for room in rooms
    ]

    # then in every room exactly one joined and the other was refused by the barrier
    for pair in outcomes:
        errors = [o.error for o in pair if o.error is not None]
        assert len(errors) == 1, pair
        # recorded as the barrier's refusal, answered as for an id that names nobody
        assert isinstance(errors[0], UnreachableError)
        assert errors[0].action == AuditAction.BARRIER_REFUSED
    for room in rooms:
        joined = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        assert len(joined & {trader.pk, researcher.pk}) == 1
    assert room_barrier_violations() == {}
    # each refusal audited exactly once, each success once, and only successes broadcast
    assert _events("barrier.refused") == ROOMS_RACED
    assert _events("room.member.added") - added_before == ROOMS_RACED
    assert sorted(name for name, _ in broadcasts) == sorted(
        ["room.granted", "member.added"] * ROOMS_RACED
    )


@postgresql_only("two joins of one room are serialised on its row")
def test_two_people_a_barrier_separates_joining_a_listed_room_at_once_never_both_join(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    # given a barrier between research and trading, and eight fresh listed rooms
    research, trading = _walled()
    trader, researcher = make_user(username="trader"), make_user(username="researcher")
    trader.groups.add(trading)
    researcher.groups.add(research)
    owner = make_room_admin()
    rooms = [
        make_room(owner=owner, name=f"ideas {i}", visibility=Room.Visibility.LISTED)
        for i in range(ROOMS_RACED)
    ]
    broadcasts.clear()
    added_before = _events("room.member.added")

    # when both join each room at the same instant (each behind the other's wall)
    outcomes = [
        run_together(
            partial(room_join, actor=trader, room=room),
            partial(room_join, actor=researcher, room=room),
        )
        for room in rooms
    ]

    # then in every room one joined and the other was refused, answered as no such room
    for pair in outcomes:
        errors = [o.error for o in pair if o.error is not None]
        assert len(errors) == 1, pair
        assert isinstance(errors[0], RoomHiddenError), errors[0]
    for room in rooms:
        joined = set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        assert len(joined & {trader.pk, researcher.pk}) == 1
    assert room_barrier_violations() == {}
    # each refusal recorded once as the barrier's, each join once, only joins broadcast
    assert _events("barrier.refused") == ROOMS_RACED
    assert _events("room.member.added") - added_before == ROOMS_RACED
    assert sorted(name for name, _ in broadcasts) == sorted(
        ["room.granted", "member.added"] * ROOMS_RACED
    )


@postgresql_only("barrier creation locks the joiner's row, as a join does")
def test_a_barrier_created_while_someone_joins_a_listed_room_is_refused_or_reported() -> None:
    # given a trader in listed rooms and a researcher about to join each
    research, _ = Group.objects.get_or_create(name="research")
    trading, _ = Group.objects.get_or_create(name="trading")
    admin, owner = _security_admin(), make_room_admin()
    for round_ in range(ROOMS_RACED):
        trader, researcher = make_user(), make_user()
        trader.groups.add(trading)
        researcher.groups.add(research)
        room = make_room(
            owner=owner, members=(trader,), name=f"r{round_}", visibility=Room.Visibility.LISTED
        )

        # when the researcher joins as the barrier is created
        join, create = run_together(
            partial(room_join, actor=researcher, room=room),
            partial(barrier_create, actor=admin, group_a=research, group_b=trading),
        )

        # then the researcher was refused, or joined first and the room is in the report
        assert create.error is None, create.error
        barrier, violations = create.value
        if join.error is None:
            assert list(violations) == [room.pk]
            membership_remove(actor=admin, room=room, member=researcher)
        else:
            assert isinstance(join.error, RoomHiddenError), join.error
            assert violations == {}
        barrier_delete(actor=admin, barrier=barrier)


# --- 2. a barrier after the fact: group changes ------------------------------------------
def test_putting_a_member_into_a_walled_group_reports_and_lets_the_room_be_resolved() -> None:
    # given a trader and a future researcher chatting in one room, and a barrier
    research, trading = _walled()
    trader, analyst, owner = make_user(), make_user(), make_room_admin()
    trader.groups.add(trading)
    room = make_room(owner=owner, members=(trader, analyst))
    admin = _security_admin()

    # when the analyst is put into research
    violations = user_groups_change(actor=admin, user=analyst, add=[research])

    # then the room is reported, as barrier creation reports it, and is resolved by removal
    assert list(violations) == [room.pk]
    assert {(c.user_a, c.user_b) for c in violations[room.pk]} == {(analyst.pk, trader.pk)}
    granted = AuditEvent.objects.filter(action="account.role.granted").latest("seq")
    assert granted.extra == {"group": "research", "rooms_in_violation": 1}
    membership_remove(actor=admin, room=room, member=analyst)
    assert room_barrier_violations() == {}


@postgresql_only("a group change and a room join lock the same rows")
def test_a_group_change_racing_a_room_join_is_refused_or_reported() -> None:
    # given a barrier, a trader in eight rooms, and analysts joining while made researchers
    research, trading = _walled()
    trader, owner, admin = make_user(), make_room_admin(), _security_admin()
    trader.groups.add(trading)
    rooms = [make_room(owner=owner, members=(trader,), name=f"r{i}") for i in range(ROOMS_RACED)]
    reported: set[int] = set()

    # when an analyst joins a room at the same instant as they are put into research
    for room in rooms:
        analyst = make_user()
        join, change = run_together(
            partial(membership_add, actor=owner, room=room, user=analyst),
            partial(user_groups_change, actor=admin, user=analyst, add=[research]),
        )
        assert change.error is None, change.error
        assert join.error is None or isinstance(join.error, UnreachableError), join.error
        reported |= set(change.value)

    # then every room in violation was reported by the change (so it can be resolved)
    assert set(room_barrier_violations()) <= reported


@postgresql_only("barrier creation and a room join lock the same rows")
def test_a_barrier_created_while_people_join_is_refused_or_reported() -> None:
    # given a researcher and a trader about to share rooms
    research, _ = Group.objects.get_or_create(name="research")
    trading, _ = Group.objects.get_or_create(name="trading")
    admin, owner = _security_admin(), make_room_admin()
    for round_ in range(ROOMS_RACED):
        trader, researcher = make_user(), make_user()
        trader.groups.add(trading)
        researcher.groups.add(research)
        room = make_room(owner=owner, members=(trader,), name=f"r{round_}")

        # when the researcher joins as the barrier is created
        join, create = run_together(
            partial(membership_add, actor=owner, room=room, user=researcher),
            partial(barrier_create, actor=admin, group_a=research, group_b=trading),
        )
        # then the researcher was refused, or joined first and the room is in the report
        assert create.error is None, create.error
        _barrier, violations = create.value
        if join.error is None:
            assert list(violations) == [room.pk]
            membership_remove(actor=admin, room=room, member=researcher)
        else:
            assert isinstance(join.error, UnreachableError), join.error
            assert violations == {}
        barrier_delete(actor=admin, barrier=_barrier)  # lifted again for the next round


# --- 3. deadlock: removal against posts --------------------------------------------------
@postgresql_only("a removal and posts take the room row and the audit chain's lock")
def test_posts_and_a_removal_at_once_never_deadlock(
    broadcasts: list[tuple[str, dict[str, Any]]], settings: Any
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    for round_ in range(6):
        # given a room with three posters and a member about to be removed
        owner = make_room_admin()
        posters = [make_user() for _ in range(3)]
        leaving = make_user()
        room = make_room(owner=owner, members=(*posters, leaving), name=f"r{round_}")

        # when three people post while the owner removes the fourth
        def post_three(poster: User, room: Room = room) -> list[Message]:
            return [message_post(sender=poster, room=room, text=f"hi {i}") for i in range(3)]

        def remove(owner: User = owner, room: Room = room, leaving: User = leaving) -> None:
            membership_remove(actor=owner, room=room, member=leaving)

        outcomes = run_together(*[partial(post_three, p) for p in posters], remove)

        # then everything succeeded: the posts are stored, the member is gone with their keys
        assert [o.error for o in outcomes] == [None] * 4
        assert Message.objects.filter(room=room).count() == 9
        assert not Membership.objects.filter(room=room, user=leaving).exists()
        assert not SealedEpochKey.objects.filter(epoch__room=room, user=leaving).exists()
        latest = RoomEpoch.objects.filter(room=room).latest("number")
        assert latest.reason == RoomEpoch.Reason.MEMBER_REMOVED


@postgresql_only("two owners demoting each other lock the room row")
def test_two_owners_demoting_each_other_at_once_leave_an_owner(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    from rooms.services import membership_role_change

    for round_ in range(6):
        first = make_room_admin()
        second = make_user()
        room = make_room(owner=first, name=f"r{round_}")
        membership_add(actor=first, room=room, user=second, role=Membership.Role.OWNER)

        def demote(actor: User, member: User, room: Room = room) -> None:
            membership_role_change(
                actor=actor, room=room, member=member, role=Membership.Role.MEMBER
            )

        outcomes = run_together(
            partial(demote, first, second),
            partial(demote, second, first),
        )

        errors = [o.error for o in outcomes if o.error is not None]
        assert len(errors) == 1, outcomes
        assert isinstance(errors[0], PermissionDenied)
        assert Membership.objects.filter(room=room, role=Membership.Role.OWNER).count() == 1
        changed = [k for _, k in broadcasts if k.get("event") == "member.updated"]
        assert len(changed) == round_ + 1  # one per round: the refused one sent nothing


# --- 4. reaction double toggle -----------------------------------------------------------
TOGGLE_ROUNDS = 30


def test_two_toggles_of_one_reaction_at_once_never_fail(settings: Any) -> None:
    settings.SAFECHAT_REACTION_RATE_LIMIT = (10_000, 1)
    # given a message
    owner = make_room_admin()
    room = make_room(owner=owner)

    for _ in range(TOGGLE_ROUNDS):
        message = message_post(sender=owner, room=room, text="deal")

        # when one person toggles the same emoji twice at the same instant
        outcomes = run_together(
            partial(reaction_toggle, actor=owner, message=message, emoji="👍"),
            partial(reaction_toggle, actor=owner, message=message, emoji="👍"),
        )

        # then neither failed, and the answers agree with what is stored
        assert [o.error for o in outcomes] == [None, None]
        stored = Reaction.objects.filter(message=message, user=owner, emoji="👍").count()
        assert stored in (0, 1)
        if stored == 1:
            assert True in [o.value for o in outcomes]


def test_two_toggles_through_the_api_at_once_never_answer_500(settings: Any) -> None:
    settings.SAFECHAT_REACTION_RATE_LIMIT = (10_000, 1)
    owner = make_room_admin()
    room = make_room(owner=owner)
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    headers = {"Authorization": f"Bearer {secret}"}

    for _ in range(TOGGLE_ROUNDS // 2):
        message = message_post(sender=owner, room=room, text="deal")
        url = f"/api/v1/rooms/{room.pk}/messages/{message.pk}/reactions/"

        outcomes = run_together(
            partial(Client().post, url, {"emoji": "👍"}, "application/json", headers=headers),
            partial(Client().post, url, {"emoji": "👍"}, "application/json", headers=headers),
        )

        assert [o.error for o in outcomes] == [None, None]
        assert [o.value.status_code for o in outcomes] == [200, 200]


# --- 5. retries write twice --------------------------------------------------------------
def test_a_repeated_socket_post_with_one_client_id_stores_one_message(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    from rooms.socket.database import message_store as _post

    # given a member
    owner = make_room_admin()
    room = make_room(owner=owner)
    broadcasts.clear()

    # when the same frame is sent twice at the same instant, and once more later
    outcomes = run_together(
        lambda: _post(owner, room.pk, "buy 100", None, "c1-abc"),
        lambda: _post(owner, room.pk, "buy 100", None, "c1-abc"),
    )
    again = _post(owner, room.pk, "buy 100", None, "c1-abc")

    # then one message was stored, posted, audited and broadcast; every answer names it
    assert [o.error for o in outcomes] == [None, None]
    (message,) = Message.objects.filter(room=room)
    assert {o.value for o in outcomes} == {again} == {message.pk}
    assert _events("message.posted") == 1
    assert [name for name, _ in broadcasts] == ["message.new"]


def test_an_api_post_repeated_with_one_idempotency_key_returns_the_original() -> None:
    # given a member with a write token
    owner = make_room_admin()
    room = make_room(owner=owner)
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "order-42"}
    url = f"/api/v1/rooms/{room.pk}/messages/"

    # when the same post is sent twice at the same instant, then retried
    outcomes = run_together(
        lambda: Client().post(
            url, {"text": "sell"}, headers=headers, content_type="application/json"
        ),
        lambda: Client().post(
            url, {"text": "sell"}, headers=headers, content_type="application/json"
        ),
    )
    retry = Client().post(url, {"text": "sell"}, headers=headers, content_type="application/json")

    # then one message exists and every answer is that message
    (message,) = Message.objects.filter(room=room)
    answers = [o.value for o in outcomes] + [retry]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert {a.json()["id"] for a in answers} == {message.pk}
    assert _events("message.posted") == 1


def test_an_idempotency_key_is_remembered_for_the_configured_hours_only(settings: Any) -> None:
    owner = make_room_admin()
    room = make_room(owner=owner)
    first = message_post(sender=owner, room=room, text="a", client_key="k")
    settings.SAFECHAT_IDEMPOTENCY_HOURS = 24
    Message.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(hours=25))

    second = message_post(sender=owner, room=room, text="b", client_key="k")

    assert second.pk != first.pk
    assert Message.objects.filter(room=room).count() == 2


def test_an_idempotency_key_used_in_another_room_is_refused() -> None:
    owner = make_room_admin()
    room, other = make_room(owner=owner), make_room(owner=owner, name="other")
    message_post(sender=owner, room=room, text="a", client_key="k")

    with pytest.raises(Exception, match="another room"):
        message_post(sender=owner, room=other, text="a", client_key="k")

    assert not Message.objects.filter(room=other).exists()


def test_the_idempotency_key_header_is_documented() -> None:
    verified_client = Client()
    sign_in_client(verified_client, make_user(), verified=True)

    schema = verified_client.get("/api/schema/", headers={"Accept": "application/json"})

    assert "Idempotency-Key" in schema.content.decode()


# --- 6. one limiter for every write, a moving window -------------------------------------
def test_edits_deletes_reactions_and_read_markers_are_limited_too(
    settings: Any, broadcasts: list[tuple[str, dict[str, Any]]]
) -> None:
    # given a 5-writes-per-minute budget for messages, and small ones for the rest
    settings.SAFECHAT_POST_RATE_LIMIT = (5, 60)
    settings.SAFECHAT_REACTION_RATE_LIMIT = (3, 60)
    settings.SAFECHAT_READ_MARKER_RATE_LIMIT = (3, 60)
    owner = make_room_admin()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="v0")
    broadcasts.clear()

    # when the owner edits, reacts and marks read many times
    def attempts(write: Callable[[int], object], times: int) -> int:
        allowed = 0
        for i in range(times):
            try:
                write(i)
                allowed += 1
            except RateLimitedError:
                pass
        return allowed

    edits = attempts(lambda i: message_edit(actor=owner, message=message, text=f"v{i}"), 40)
    reactions = attempts(lambda i: reaction_toggle(actor=owner, message=message, emoji="👌"), 40)
    markers = attempts(lambda i: read_marker_set(actor=owner, room=room, message_id=message.pk), 40)

    # then each stopped at its budget (posts and edits share one), and nothing more was written
    assert (edits, reactions, markers) == (4, 3, 3)
    message.refresh_from_db()
    assert message.revision == 4
    assert _events("message.edited") == 4
    sent = [k.get("event") for _, k in broadcasts]
    assert sent.count("message.edited") == 4
    assert sent.count("message.reactions") == 3
    with pytest.raises(RateLimitedError):
        message_delete(actor=owner, message=message)
    message.refresh_from_db()
    assert message.deleted_at is None
    assert "message.deleted" not in [k.get("event") for _, k in broadcasts]


def test_the_window_moves_so_a_boundary_never_lets_twice_the_limit_through() -> None:
    # given 3 events allowed per 2 s, used up just before a 2-s boundary
    rate = Rate(limit=3, seconds=2)
    time.sleep(2 - time.time() % 2 + 1.6)  # 0.4 s before a boundary
    assert [rate_hit(rate, "test", "boundary") for _ in range(3)] == [None, None, None]

    # when the boundary passes (a fixed window would start counting afresh)
    time.sleep(0.6)

    # then the limit still holds until the first events are 2 s old
    assert rate_hit(rate, "test", "boundary") is not None


def test_the_limiter_counts_in_memory_when_redis_is_unreachable(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a Redis that cannot be reached
    settings.REDIS_URL = "redis://127.0.0.1:9/0"

    # when writes are counted
    rate = Rate(limit=2, seconds=60)
    answers = [rate_hit(rate, "test", "outage") for _ in range(3)]

    # then they are still limited, in this process, and the outage is logged
    assert answers[:2] == [None, None]
    assert answers[2] is not None
    assert "Redis unreachable" in caplog.text


def test_posting_through_the_api_works_while_redis_is_down(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    owner = make_room_admin()
    room = make_room(owner=owner)
    _, secret = api_token_create(actor=owner, name="bot", scope="write")

    answer = Client().post(
        f"/api/v1/rooms/{room.pk}/messages/",
        {"text": "still here"},
        headers={"Authorization": f"Bearer {secret}"},
        content_type="application/json",
    )
    refused = Client().get("/api/v1/rooms/", headers={"Authorization": "Bearer sct_0_bad"})

    assert answer.status_code == 201
    assert refused.status_code == 401


def test_a_refused_room_change_rolls_back_and_is_counted_once(settings: Any) -> None:
    # a refusal raised under the locks is audited after the rollback, once
    research, trading = _walled()
    trader, researcher, owner = make_user(), make_user(), make_room_admin()
    trader.groups.add(trading)
    researcher.groups.add(research)
    room = make_room(owner=owner, members=(trader,))
    from rooms.services.membership import _membership_insert

    with pytest.raises(UnreachableError):  # recorded as barrier.refused, answered as nobody
        _membership_insert(
            actor=owner, room=room, user=researcher, role="member", permission="manage_members"
        )

    assert _events("barrier.refused") == 1
    assert not Membership.objects.filter(room=room, user=researcher).exists()
    assert Room.objects.filter(pk=room.pk).exists()


def test_an_admin_group_edit_goes_through_the_service_and_reports_violations() -> None:
    # given a barrier, a trader and an analyst in one room, and a security admin's session
    from tests.accounts.factories import grant_role

    research, trading = _walled()
    trader = make_user(username="trader", first_name="Tom", last_name="Roe")
    analyst, owner = (
        make_user(username="analyst", first_name="Ann", last_name="Lee"),
        make_room_admin(),
    )
    trader.groups.add(trading)
    room = make_room(owner=owner, members=(trader, analyst), name="Rates")
    admin = grant_role(make_user(), "security_admin")
    client = Client()
    sign_in_client(client, admin, verified=True)

    # when the admin puts the analyst into research through the Django admin
    answer = client.post(
        f"/admin/auth/group/{research.pk}/change/",
        {"members": [analyst.pk]},
        follow=True,
    )

    # then the change is made, audited, and the room in violation is named
    assert answer.status_code == 200
    assert research.user_set.filter(pk=analyst.pk).exists()
    granted = AuditEvent.objects.filter(action="account.role.granted").latest("seq")
    assert granted.extra == {"group": "research", "rooms_in_violation": 1}
    # one line per room, naming the people the barrier separates there
    assert "1 room(s) now violate an information barrier" in answer.content.decode()
    assert (
        f"<li>“Rates” (#{room.pk}): Tom Roe (@trader) and Ann Lee (@analyst)</li>"
        in answer.content.decode()
    )
    assert list(room_barrier_violations()) == [room.pk]


def test_role_groups_cannot_be_filled_from_the_admin() -> None:
    from accounts.roles import Role, roles_sync
    from tests.accounts.factories import grant_role

    roles_sync()
    admin = grant_role(make_user(), "security_admin")
    someone = make_user()
    client = Client()
    sign_in_client(client, admin, verified=True)
    group = Group.objects.get(name=Role.SECURITY_ADMIN.value)

    client.post(f"/admin/auth/group/{group.pk}/change/", {"members": [someone.pk]})

    assert not group.user_set.filter(pk=someone.pk).exists()


def test_the_api_answers_429_to_edits_past_the_shared_budget(settings: Any) -> None:
    # given a budget of 2 message writes a minute, one already spent on the post
    settings.SAFECHAT_POST_RATE_LIMIT = (2, 60)
    owner = make_room_admin()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="v0")
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    url = f"/api/v1/rooms/{room.pk}/messages/{message.pk}/"

    # when the edits come through the API
    answers = [
        Client().patch(
            url,
            {"text": f"v{i}"},
            headers={"Authorization": f"Bearer {secret}"},
            content_type="application/json",
        )
        for i in range(1, 3)
    ]

    # then the one past the budget is refused with a time to wait, and not written
    assert [a.status_code for a in answers] == [200, 429]
    assert int(answers[1]["Retry-After"]) > 0
    message.refresh_from_db()
    assert message.revision == 1


def test_one_direct_conversation_asked_for_twice_at_once_is_one_room() -> None:
    from rooms.services import direct_conversation_create

    for _ in range(6):
        # given two people
        first, second = make_user(), make_user()

        # when the first starts a conversation with the second twice at the same instant
        outcomes = run_together(
            partial(direct_conversation_create, actor=first, participants=[second]),
            partial(direct_conversation_create, actor=first, participants=[second]),
        )

        # then both answers are the one conversation
        assert [o.error for o in outcomes] == [None, None]
        assert outcomes[0].value.pk == outcomes[1].value.pk
        assert Room.objects.filter(kind=Room.Kind.DIRECT, memberships__user=first).count() == 1
