"""Requests that arrive together, second round: the cases an adversarial review found.

Real threads on PostgreSQL, released together. Where the window between two statements
is what matters, a call is slowed down (``time.sleep``) to hold it open on every run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create, user_deactivate
from audit.models import AuditEvent
from rooms.errors import UnreachableError
from rooms.models import InformationBarrier, Membership, Message, Reaction, Room
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    group_members_set,
    membership_add,
    membership_remove,
    membership_role_change,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    room_archive,
    room_update,
)
from safechat import events
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every event published, by name, from any thread (sent after its commit)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(group: str, message: dict[str, Any]) -> None:
        sent.append((message["event"], {k: v for k, v in message.items() if k != "type"}))

    monkeypatch.setattr(events, "deliver", record)
    return sent


def _after(seconds: float, call: Callable[[], Any]) -> Callable[[], Any]:
    """``call``, started ``seconds`` after the threads are released."""

    def later() -> Any:
        time.sleep(seconds)
        return call()

    return later


def _admin_client() -> Client:
    client = Client(raise_request_exception=False)
    sign_in_client(client, grant_role(make_user(), "security_admin"), verified=True)
    return client


def _slowed(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, seconds: float) -> None:
    """Hold the window after ``module.name`` returns open for ``seconds``."""
    real = getattr(module, name)

    def slow(**kwargs: Any) -> Any:
        out = real(**kwargs)
        time.sleep(seconds)
        return out

    monkeypatch.setattr(module, name, slow)


# --- the admin's group page and posts ---------------------------------------------------


@postgresql_only("the group page and a post lock the same room row and the audit chain")
def test_the_group_page_changing_two_people_never_deadlocks_with_a_post(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import rooms.services.messages as messages

    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    # given a group, two people to put into it, and a room the second one is in
    group, _ = Group.objects.get_or_create(name="desk")
    first, second = make_user(), make_user()
    owner = make_room_admin()
    room = make_room(owner=owner, members=(second,))
    client = _admin_client()
    _slowed(monkeypatch, messages, "message_encrypt", 0.6)  # the room is locked here

    # when the admin saves the page while the owner posts in the second person's room
    outcomes = run_together(
        partial(
            client.post, f"/admin/auth/group/{group.pk}/change/", {"members": [first.pk, second.pk]}
        ),
        partial(message_post, sender=owner, room=room, text="hi"),
    )

    # then both went through: nobody waited on a lock after an audit append
    assert outcomes[0].error is None
    assert outcomes[0].value.status_code == 302
    assert outcomes[1].error is None
    assert set(group.user_set.values_list("pk", flat=True)) == {first.pk, second.pk}
    assert Message.objects.filter(room=room).count() == 1


def test_group_members_set_locks_first_and_audits_each_person_last() -> None:
    # given a barrier-free group and three people, one already in it
    group, _ = Group.objects.get_or_create(name="desk")
    staying, leaving, joining = make_user(), make_user(), make_user()
    group.user_set.add(staying, leaving)
    admin = grant_role(make_user(), "security_admin")

    # when one call adds one person and removes another
    violations = group_members_set(actor=admin, group=group, add=[joining], remove=[leaving])

    # then both changes are made and audited once each, with no room in violation
    assert violations == {}
    assert set(group.user_set.values_list("pk", flat=True)) == {staying.pk, joining.pk}
    granted = AuditEvent.objects.filter(action="account.role.granted")
    revoked = AuditEvent.objects.filter(action="account.role.revoked")
    assert [e.target_id for e in granted] == [str(joining.pk)]
    assert [e.target_id for e in revoked] == [str(leaving.pk)]


def test_saving_an_unchanged_group_page_keeps_deactivated_members() -> None:
    # given a group with an active and a deactivated member
    group, _ = Group.objects.get_or_create(name="trading")
    active, gone = make_user(), make_user(is_active=False)
    group.user_set.add(active, gone)
    client = _admin_client()

    # when the admin saves the page as shown (the deactivated member is not listed)
    answer = client.post(f"/admin/auth/group/{group.pk}/change/", {"members": [active.pk]})

    # then nobody left the group and nothing was audited
    assert answer.status_code == 302
    assert set(group.user_set.values_list("pk", flat=True)) == {active.pk, gone.pk}
    assert not AuditEvent.objects.filter(action="account.role.revoked").exists()


# --- a post that starts a new epoch, against row locks then an audit append -------------


@postgresql_only("a reply's insert takes KEY SHARE on its parent after the epoch's audit")
def test_a_reply_starting_an_epoch_and_its_parent_deleted_at_once_never_deadlock(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import rooms.services.messages as messages

    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    # given a message, and a room whose next post starts a new epoch (its cryptoperiod)
    owner, poster = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(poster,))
    parent = message_post(sender=owner, room=room, text="parent")
    settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1
    _slowed(monkeypatch, messages, "message_encrypt", 0.4)  # the audit chain is held here

    def delete() -> Message:
        time.sleep(0.15)  # the reply holds the audit chain by now
        return message_delete(actor=owner, message=parent)

    # when a reply to the message and the message's deletion arrive together
    outcomes = run_together(
        partial(message_post, sender=poster, room=room, text="reply", parent_id=parent.pk),
        delete,
    )

    # then both went through, one after the other
    assert [o.error for o in outcomes] == [None, None]
    assert Message.objects.get(pk=parent.pk).deleted_at is not None
    assert Message.objects.filter(room=room, parent=parent).count() == 1


@postgresql_only("a mention's insert takes KEY SHARE on the user after the epoch's audit")
def test_a_mention_starting_an_epoch_and_the_person_deactivated_at_once_never_deadlock(
    settings: Any,
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    admin = grant_role(make_user(), "security_admin")
    errors: list[BaseException] = []
    for round_ in range(15):
        # given a room whose next post starts a new epoch, and a member about to go
        owner, poster = make_room_admin(), make_user()
        target = make_user(username=f"target{round_}")
        room = make_room(owner=owner, members=(poster, target), name=f"r{round_}")
        settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1_000_000
        message_post(sender=owner, room=room, text="first")
        settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1

        # when a post mentions them while a security admin deactivates them
        outcomes = run_together(
            partial(message_post, sender=poster, room=room, text=f"@target{round_} look"),
            partial(user_deactivate, actor=admin, user=target),
        )
        errors += [o.error for o in outcomes if o.error is not None]

    # then nothing failed
    assert errors == []


# --- checks made again under the room's lock ----------------------------------------------


def _refusals(reason: str) -> int:
    return AuditEvent.objects.filter(action="room.access.denied", extra__reason=reason).count()


@postgresql_only("the read marker and the removal lock the same room row")
def test_a_read_marker_racing_the_readers_removal_is_refused_not_an_error(
    monkeypatch: pytest.MonkeyPatch, broadcasts: list[tuple[str, dict[str, Any]]], settings: Any
) -> None:
    import rooms.services.membership as membership

    settings.SAFECHAT_READ_MARKER_RATE_LIMIT = (10_000, 1)
    # given a reader, a message, and a removal held open after the membership is gone
    owner, reader = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(reader,))
    message = message_post(sender=owner, room=room, text="hello")
    _, secret = api_token_create(actor=reader, name="bot", scope="write")
    _slowed(monkeypatch, membership, "room_keys_revoke", 0.5)
    broadcasts.clear()

    def mark() -> Any:
        time.sleep(0.15)  # the removal holds the room's lock by now
        return Client(raise_request_exception=False).post(
            f"/api/v1/rooms/{room.pk}/read-marker/",
            {"message_id": message.pk},
            headers={"Authorization": f"Bearer {secret}"},
            content_type="application/json",
        )

    # when the owner removes the reader while the reader's marker moves
    outcomes = run_together(partial(membership_remove, actor=owner, room=room, member=reader), mark)

    # then the removal won; the marker is refused (403, audited once), nothing moved
    assert outcomes[0].error is None
    assert outcomes[1].value.status_code == 403
    assert _refusals("missing view_room") == 1
    assert not [b for b in broadcasts if b[1].get("event") == "read.marker"]


@postgresql_only("the removal and the demotion lock the same room row")
def test_a_moderator_demoted_while_removing_someone_is_refused(
    monkeypatch: pytest.MonkeyPatch, broadcasts: list[tuple[str, dict[str, Any]]]
) -> None:
    import rooms.services.membership as membership

    # given a moderator whose removal of a member reaches the room after a demotion
    owner, moderator, member = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    membership_add(actor=owner, room=room, user=moderator, role=Membership.Role.MODERATOR)
    real = membership._membership_delete

    def late(**kwargs: Any) -> None:
        time.sleep(0.4)  # the request is in flight a little longer
        real(**kwargs)

    monkeypatch.setattr(membership, "_membership_delete", late)
    broadcasts.clear()

    # when the owner demotes the moderator at the same instant
    outcomes = run_together(
        partial(membership_remove, actor=moderator, room=room, member=member),
        _after(
            0.1,
            partial(
                membership_role_change,
                actor=owner,
                room=room,
                member=moderator,
                role=Membership.Role.MEMBER,
            ),
        ),
    )

    # then the removal is refused (audited once), the member stays, no removal is sent
    assert isinstance(outcomes[0].error, PermissionDenied)
    assert outcomes[1].error is None
    assert Membership.objects.filter(room=room, user=member).exists()
    assert _refusals("missing manage_members") == 1
    assert not AuditEvent.objects.filter(action="room.member.removed").exists()
    assert not [b for b in broadcasts if b[0] in ("room.revoked", "member.removed")]


@postgresql_only("a write and the writer's removal lock the same room row")
@pytest.mark.parametrize("write", ["react", "delete"])
def test_a_reaction_or_deletion_by_someone_removed_at_once_is_refused(
    write: str, monkeypatch: pytest.MonkeyPatch, broadcasts: list[tuple[str, dict[str, Any]]]
) -> None:
    import rooms.services.messages as messages

    # given a member's own message, and a write slowed between its checks and its lock
    owner, member = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=member, room=room, text="x")
    _slowed(monkeypatch, messages, "write_rate_check", 0.5)  # a slow Redis round trip
    broadcasts.clear()
    calls: dict[str, Callable[[], Any]] = {
        "react": partial(reaction_toggle, actor=member, message=message, emoji="👍"),
        "delete": partial(message_delete, actor=member, message=message),
    }

    # when the owner removes the member while the write is in flight
    outcomes = run_together(
        calls[write],
        _after(0.1, partial(membership_remove, actor=owner, room=room, member=member)),
    )

    # then the write is refused (audited once) and nothing was written or sent
    assert isinstance(outcomes[0].error, PermissionDenied)
    assert outcomes[1].error is None
    assert not Reaction.objects.filter(message=message).exists()
    assert Message.objects.get(pk=message.pk).deleted_at is None
    assert not AuditEvent.objects.filter(action="message.deleted").exists()
    # (deleting one's own message needs post_message, as reacting does)
    assert _refusals("missing post_message") == 1
    assert not [
        b
        for b in broadcasts
        if b[1].get("room_id") == room.pk and b[1]["event"].startswith("message.")
    ]


@postgresql_only("two archives lock the same room row")
def test_two_archives_at_once_write_one_audit_event(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    for round_ in range(5):
        # given a live room, loaded twice
        owner = make_room_admin()
        room = make_room(owner=owner, name=f"a{round_}")
        first, second = Room.objects.get(pk=room.pk), Room.objects.get(pk=room.pk)

        # when its owner archives it twice at the same instant
        outcomes = run_together(
            partial(room_archive, actor=owner, room=first),
            partial(room_archive, actor=owner, room=second),
        )

        # then both answer the archived room; one event is recorded and one broadcast sent
        assert [o.error for o in outcomes] == [None, None]
        assert all(o.value.is_archived for o in outcomes)
        assert (
            AuditEvent.objects.filter(action="room.archived", target_id=str(room.pk)).count() == 1
        )
        assert [b for b in broadcasts if b[1] == {"room_id": room.pk, "event": "room.archived"}]
    assert len([b for b in broadcasts if b[1].get("event") == "room.archived"]) == 5


@postgresql_only("a settings change and a demotion lock the same room row")
def test_a_room_change_by_an_owner_demoted_at_once_is_refused(
    monkeypatch: pytest.MonkeyPatch, broadcasts: list[tuple[str, dict[str, Any]]]
) -> None:
    import rooms.services.rooms as rooms_services

    # given two owners, one of whose settings change reaches the room after a demotion
    owner, other = make_room_admin(), make_user()
    room = make_room(owner=owner)
    membership_add(actor=owner, room=room, user=other, role=Membership.Role.OWNER)
    _slowed(monkeypatch, rooms_services, "require_not_archived", 0.4)
    broadcasts.clear()

    # when the other owner demotes them at the same instant
    outcomes = run_together(
        partial(room_update, actor=owner, room=Room.objects.get(pk=room.pk), topic="new"),
        _after(
            0.1,
            partial(membership_role_change, actor=other, room=room, member=owner, role="member"),
        ),
    )

    # then the change is refused (audited once): nothing written, nothing sent
    assert isinstance(outcomes[0].error, PermissionDenied)
    assert outcomes[1].error is None
    assert Room.objects.get(pk=room.pk).topic == ""
    assert not AuditEvent.objects.filter(action="room.updated").exists()
    assert _refusals("missing manage_room") == 1
    assert not [b for b in broadcasts if b[1].get("event") == "room.updated"]


# --- idempotency keys stand for one post -------------------------------------------------


def _api_post(secret: str, room: Room, key: str, **body: Any) -> Any:
    return Client().post(
        f"/api/v1/rooms/{room.pk}/messages/",
        body,
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
        content_type="application/json",
    )


def test_one_idempotency_key_with_another_body_is_refused_and_stores_nothing(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    # given a post made with an idempotency key
    owner = make_room_admin()
    room = make_room(owner=owner)
    parent = message_post(sender=owner, room=room, text="thread")
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    first = _api_post(secret, room, "k1", text="BUY 100")
    broadcasts.clear()

    # when the key is reused for another text, and for the same text in a thread
    other_text = _api_post(secret, room, "k1", text="SELL 100")
    other_parent = _api_post(secret, room, "k1", text="BUY 100", parent_id=parent.pk)

    # then both are refused with 422; nothing was stored, audited or sent
    assert first.status_code == 201
    for answer in (other_text, other_parent):
        assert answer.status_code == 422
        assert answer.json()["code"] == "idempotency_key_reused"
        assert "different message" in answer.json()["detail"]
    assert Message.objects.filter(room=room).count() == 2
    assert AuditEvent.objects.filter(action="message.posted").count() == 2
    assert broadcasts == []


def test_a_replay_answers_the_message_as_it_is_now_and_keeps_no_text() -> None:
    # given a post made with an idempotency key, then edited
    owner = make_room_admin()
    room = make_room(owner=owner)
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    first = _api_post(secret, room, "k2", text="v0")
    message = Message.objects.get(pk=first.json()["id"])
    message_edit(actor=owner, message=message, text="v1")

    # when the original post is replayed
    replay = _api_post(secret, room, "k2", text="v0")

    # then it answers the one message with its current text; the fingerprint is no text
    assert replay.status_code == 201
    assert replay.json()["id"] == message.pk
    assert replay.json()["text"] == "v1"
    assert Message.objects.filter(room=room).count() == 1
    stored = Message.objects.get(pk=message.pk).client_fingerprint
    assert len(stored) == 64
    assert "v0" not in stored
    assert stored != hashlib.sha256(b"\x00v0").hexdigest()  # keyed: not guessable from text


def test_the_schema_says_what_a_replay_and_a_mismatch_answer() -> None:
    client = Client()
    sign_in_client(client, make_user(), verified=True)

    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()

    create = schema["paths"]["/api/v1/rooms/{room_id}/messages/"]["post"]
    (header,) = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert "as it is now" in header["description"]
    assert "422" in header["description"]
    assert "422" in create["responses"]


# --- the heavier writes on rooms go through the one limiter too ------------------------


def test_room_and_direct_conversation_creation_share_a_budget(settings: Any) -> None:
    settings.SAFECHAT_MEMBERS_CAN_CREATE_ROOMS = True
    settings.SAFECHAT_ROOM_CREATE_RATE_LIMIT = (2, 60)
    # given a person with a write token, and two others to talk to
    me, a, b = make_user(), make_user(), make_user()
    _, secret = api_token_create(actor=me, name="bot", scope="write")
    headers = {"Authorization": f"Bearer {secret}"}

    # when they start group conversations and a room, again and again
    answers = [
        Client().post(
            "/api/v1/direct/",
            {"participants": [a.pk, b.pk]},
            headers=headers,
            content_type="application/json",
        )
        for _ in range(2)
    ]
    answers += [
        Client().post(
            "/api/v1/rooms/create/",
            {"name": "more"},
            headers=headers,
            content_type="application/json",
        ),
        Client().post(
            "/api/v1/direct/",
            {"participants": [a.pk, b.pk]},
            headers=headers,
            content_type="application/json",
        ),
    ]

    # then the budget let two through; the rest answered 429 and created nothing
    assert [a.status_code for a in answers] == [201, 201, 429, 429]
    assert "Retry-After" in answers[-1].headers
    assert Room.objects.count() == 2
    assert AuditEvent.objects.filter(action="room.created").count() == 2


def test_member_changes_and_room_settings_are_limited(
    settings: Any, broadcasts: list[tuple[str, dict[str, Any]]]
) -> None:
    settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT = (3, 60)
    settings.SAFECHAT_ROOM_SETTINGS_RATE_LIMIT = (2, 60)
    # given an owner with a write token and someone to churn
    owner, victim = make_room_admin(), make_user()
    room = make_room(owner=owner)
    _, secret = api_token_create(actor=owner, name="bot", scope="write")
    headers = {"Authorization": f"Bearer {secret}"}
    members = f"/api/v1/rooms/{room.pk}/members/"
    epochs = room.epochs.count()
    broadcasts.clear()

    # when the owner adds and removes them over and over, and renames the room
    churn = []
    for _ in range(3):
        churn.append(
            Client()
            .post(members, {"user_id": victim.pk}, headers=headers, content_type="application/json")
            .status_code
        )
        churn.append(Client().delete(f"{members}{victim.pk}/", headers=headers).status_code)
    renames = [
        Client()
        .patch(
            f"/api/v1/rooms/{room.pk}/",
            {"topic": f"t{i}"},
            headers=headers,
            content_type="application/json",
        )
        .status_code
        for i in range(3)
    ]

    # then each budget stopped the writes past it: no epoch, event or broadcast more
    assert churn == [201, 204, 201, 429, 429, 429]
    assert renames == [200, 200, 429]
    assert room.epochs.count() == epochs + 1  # the one removal
    assert AuditEvent.objects.filter(action="room.member.added").count() == 2
    assert AuditEvent.objects.filter(action="room.updated").count() == 2
    assert [b[0] for b in broadcasts].count("member.added") == 2
    assert Room.objects.get(pk=room.pk).topic == "t1"


# --- barriers, group pages and direct conversations ------------------------------------


def _walled() -> tuple[Group, Group, User]:
    research, _ = Group.objects.get_or_create(name="research")
    trading, _ = Group.objects.get_or_create(name="trading")
    admin = grant_role(make_user(), "security_admin")
    barrier_create(actor=admin, group_a=research, group_b=trading, reason="MAR")
    return research, trading, admin


def test_a_known_violation_does_not_block_adding_someone_unrelated(
    broadcasts: list[tuple[str, dict[str, Any]]],
) -> None:
    # given a room already in violation (a member moved into research, being resolved)
    research, trading, admin = _walled()
    trader, analyst, newcomer, researcher = make_user(), make_user(), make_user(), make_user()
    trader.groups.add(trading)
    researcher.groups.add(research)
    owner = make_room_admin()
    room = make_room(owner=owner, members=(trader, analyst))
    group_members_set(actor=admin, group=research, add=[analyst])
    broadcasts.clear()

    # when the owner adds someone in no group, then someone in research
    membership_add(actor=owner, room=room, user=newcomer)
    with pytest.raises(UnreachableError):  # recorded as barrier.refused
        membership_add(actor=owner, room=room, user=researcher)

    # then the unrelated person joined; the researcher was refused (audited once), unsent
    assert Membership.objects.filter(room=room, user=newcomer).exists()
    assert not Membership.objects.filter(room=room, user=researcher).exists()
    assert AuditEvent.objects.filter(action="barrier.refused").count() == 1
    assert [b[1]["user_id"] for b in broadcasts if b[0] == "member.added"] == [newcomer.pk]


def test_the_admin_creates_a_barrier_whichever_group_comes_first() -> None:
    # given two groups, the second made first
    high, _ = Group.objects.get_or_create(name="bbb")
    low, _ = Group.objects.get_or_create(name="aaa")
    low, high = sorted([low, high], key=lambda g: g.pk)
    client = _admin_client()

    # when the admin picks the higher id as the first group
    answer = client.post(
        "/admin/rooms/informationbarrier/add/",
        {"group_a": high.pk, "group_b": low.pk, "reason": "MAR"},
    )

    # then the barrier exists, stored in order, audited once
    assert answer.status_code == 302
    (barrier,) = InformationBarrier.objects.all()
    assert (barrier.group_a_id, barrier.group_b_id) == (low.pk, high.pk)
    assert AuditEvent.objects.filter(action="barrier.created").count() == 1


@postgresql_only("two barrier creations lock the same two groups")
def test_the_admin_creating_one_barrier_twice_at_once_never_answers_500() -> None:
    low, _ = Group.objects.get_or_create(name="aaa")
    high, _ = Group.objects.get_or_create(name="bbb")
    first, second = _admin_client(), _admin_client()
    form = {"group_a": low.pk, "group_b": high.pk, "reason": "MAR"}
    for _ in range(4):
        InformationBarrier.objects.all().delete()
        before = AuditEvent.objects.filter(action="barrier.created").count()

        # when two security admins submit the same barrier at the same instant
        outcomes = run_together(
            partial(first.post, "/admin/rooms/informationbarrier/add/", form),
            partial(second.post, "/admin/rooms/informationbarrier/add/", form),
        )

        # then neither failed: one barrier, created and audited once
        assert [o.error for o in outcomes] == [None, None]
        assert all(o.value.status_code in (200, 302) for o in outcomes)
        assert InformationBarrier.objects.count() == 1
        assert AuditEvent.objects.filter(action="barrier.created").count() == before + 1


@postgresql_only("the conversation and the deactivation lock the same user row")
def test_a_direct_conversation_never_starts_after_a_participant_was_deactivated() -> None:
    admin = grant_role(make_user(), "security_admin")
    for _ in range(10):
        # given three people
        a, b, c = make_user(), make_user(), make_user()

        # when a starts a conversation with b and c while b is deactivated
        outcomes = run_together(
            partial(direct_conversation_create, actor=a, participants=[b, c]),
            partial(user_deactivate, actor=admin, user=b),
        )

        # then either it was refused (nothing made), or made before the deactivation
        assert outcomes[1].error is None
        deactivated = AuditEvent.objects.get(action="account.deactivated", target_id=str(b.pk))
        if outcomes[0].error is not None:
            assert isinstance(outcomes[0].error, ValidationError)
            assert not Room.objects.filter(memberships__user=b).exists()
        else:
            created = AuditEvent.objects.get(
                action="room.created", target_id=str(outcomes[0].value.pk)
            )
            assert created.seq < deactivated.seq


@postgresql_only("identical keyed posts in two rooms meet on the (sender, key) unique index")
def test_one_idempotency_key_in_two_rooms_at_once_never_deadlocks(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import rooms.services.messages as messages

    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1
    # given two rooms of one sender: the first's epoch is fresh, the second's is used up
    owner = make_room_admin()
    fresh, used = make_room(owner=owner, name="fresh"), make_room(owner=owner, name="used")
    message_post(sender=owner, room=used, text="first")
    real = messages._mentioned_members

    def slow(**kwargs: Any) -> Any:  # the fresh room's message is inserted, not yet audited
        if kwargs["room"].pk == fresh.pk:
            time.sleep(0.5)
        return real(**kwargs)

    monkeypatch.setattr(messages, "_mentioned_members", slow)

    def in_used_room() -> Message:
        time.sleep(0.15)  # starts a new epoch (audited) while the fresh room's post waits
        return message_post(sender=owner, room=used, text="same", client_key="k9")

    # when the same key is posted in both rooms at once
    outcomes = run_together(
        partial(message_post, sender=owner, room=fresh, text="same", client_key="k9"),
        in_used_room,
    )

    # then one message was stored under the key; the other was refused, neither deadlocked
    assert outcomes[0].error is None
    assert isinstance(outcomes[1].error, ValidationError)
    assert "another room" in str(outcomes[1].error)
    assert Message.objects.filter(client_key="k9").count() == 1
