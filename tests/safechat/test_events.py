"""The event registry's contract (in the spirit of Zulip's ``verify_action``).

Every service that publishes is run with delivery captured: each event it emits must be
registered, go to its audience's group, and carry exactly its payload type (no key
missing, none extra, every value of the declared type). Every registered event is
emitted by some service, published by a socket, or is a socket's own answer. And the
portal re-types none of the names: they come from the page's data block.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, is_typeddict

import pytest
from django.db import transaction
from django.test import Client, override_settings

from accounts.models import User
from accounts.services.profile import user_profile_update
from accounts.services.sessions import credentials_bump, session_end_all
from accounts.services.users import password_reset_by_admin, user_deactivate
from files.models import StoredFile
from files.services import file_delete, file_scan, upload_append, upload_create
from rooms.models import Membership, Message, Room, RoomInvitation
from rooms.services import (
    direct_conversation_create,
    membership_add,
    membership_mute_set,
    membership_remove,
    membership_role_change,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    read_marker_set,
    room_archive,
    room_create,
    room_invitation_accept,
    room_invitation_send,
    room_join,
    room_key_rotate,
    room_update,
)
from safechat import events
from safechat.events import (
    AUDIENCE,
    PAYLOADS,
    ROOM_ENVELOPE,
    SOCKET_PUBLISHED,
    USER_ENVELOPE,
    Audience,
    Event,
    Frame,
    room_group,
    user_group,
)
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin
from tests.support.clamd import OwnClamd
from tests.support.payloads import mismatches

CHAT_MODULES = Path(__file__).resolve().parents[2] / "static" / "safechat" / "chat"


def _chat_js() -> str:
    """The chat client's source: every module of static/safechat/chat/, in name order."""
    modules = sorted(CHAT_MODULES.glob("*.js"))
    assert modules, "no chat modules found"
    return "\n".join(m.read_text() for m in modules)


def _check(group: str, message: dict[str, Any]) -> Event:
    """The registered event ``message`` is, after checking its group, envelope and payload."""
    name = message["event"]
    assert name in {e.value for e in Event}, f"unregistered event {name}"
    event = Event(name)
    payload = {k: v for k, v in message.items() if k not in ("type", "event")}
    assert mismatches(payload, PAYLOADS[event]) == [], event
    audience = AUDIENCE[event]
    if audience is Audience.ROOM:
        assert (message["type"], group) == (ROOM_ENVELOPE, room_group(payload["room_id"]))
    else:
        assert audience is Audience.USER, f"{event} is a socket's answer, never published"
        assert message["type"] == USER_ENVELOPE
        assert re.fullmatch(r"user\.\d+", group)
    return event


# --- every publishing service, run with delivery captured ---------------------------------
@dataclass
class World:
    owner: User
    member: User
    outsider: User
    admin: User
    room: Room
    message: Message
    clamd_socket: str


@pytest.fixture
def world(db: None, shared_clamd: OwnClamd) -> World:
    owner = make_room_admin(username="owner")
    member, outsider = make_user(username="member"), make_user(username="outsider")
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=owner, room=room, text="first")
    admin = grant_role(make_user(), "security_admin")
    return World(owner, member, outsider, admin, room, message, shared_clamd.socket_path)


def _file_pending(w: World) -> StoredFile:
    """A file uploaded whole and waiting for its scan (no scanner yet: nothing published)."""
    with override_settings(SAFECHAT_CLAMD_SOCKET="", SAFECHAT_CLAMD_HOST=""):
        stored = upload_create(actor=w.owner, room=w.room, length=5, name="note.txt")
        return upload_append(actor=w.owner, stored=stored, offset=0, body=[b"hello"])


def _file_scanned(w: World) -> object:
    stored = _file_pending(w)
    with override_settings(SAFECHAT_CLAMD_SOCKET=w.clamd_socket, SAFECHAT_CLAMD_HOST=""):
        return file_scan(file_id=stored.pk)


def _file_deleted(w: World) -> None:
    with override_settings(SAFECHAT_CLAMD_SOCKET=w.clamd_socket, SAFECHAT_CLAMD_HOST=""):
        stored = _file_pending(w)
        file_scan(file_id=stored.pk)
    file_delete(actor=w.owner, stored=StoredFile.objects.get(pk=stored.pk))


# Where an action needs a step before it, that step publishes nothing.
def _accepted_invitation(w: World) -> object:
    room_invitation_send(actor=w.owner, room=w.room, invitee=w.outsider)
    invitation = RoomInvitation.objects.get(room=w.room, invitee=w.outsider)
    return room_invitation_accept(actor=w.outsider, invitation=invitation)


def _joined(w: World) -> object:
    Room.objects.filter(pk=w.room.pk).update(visibility=Room.Visibility.LISTED)
    return room_join(actor=w.outsider, room=Room.objects.get(pk=w.room.pk))


def _bumped(w: World) -> None:
    with transaction.atomic():
        credentials_bump(user=w.member, reason="password_changed", revoke_tokens=False)


def _signed_in_then_ended(w: World) -> object:
    sign_in_client(Client(), w.member, verified=True)
    return session_end_all(actor=w.member, user=w.member)


M, E = Membership.Role, Event
ACTIONS: dict[str, tuple[Callable[[World], object], list[Event]]] = {
    "message_post": (
        lambda w: message_post(sender=w.owner, room=w.room, text="hello @member"),
        [E.MESSAGE_NEW, E.MENTION],
    ),
    "message_edit": (
        lambda w: message_edit(actor=w.owner, message=w.message, text="second"),
        [E.MESSAGE_EDITED],
    ),
    "message_delete": (
        lambda w: message_delete(actor=w.owner, message=w.message),
        [E.MESSAGE_DELETED],
    ),
    "reaction_toggle": (
        lambda w: reaction_toggle(actor=w.member, message=w.message, emoji="👌"),
        [E.MESSAGE_REACTIONS],
    ),
    "read_marker_set": (
        lambda w: read_marker_set(actor=w.member, room=w.room, message_id=w.message.pk),
        [E.READ_MARKER],
    ),
    "room_create": (lambda w: room_create(actor=w.owner, name="New desk"), []),
    "direct_conversation_create": (
        lambda w: direct_conversation_create(actor=w.owner, participants=[w.outsider]),
        [E.ROOM_GRANTED],
    ),
    "room_update": (
        lambda w: room_update(actor=w.owner, room=w.room, topic="rates"),
        [E.ROOM_UPDATED],
    ),
    "room_archive": (lambda w: room_archive(actor=w.owner, room=w.room), [E.ROOM_ARCHIVED]),
    "room_key_rotate": (lambda w: room_key_rotate(actor=w.owner, room=w.room), []),
    "membership_add": (
        lambda w: membership_add(actor=w.owner, room=w.room, user=w.outsider),
        [E.ROOM_GRANTED, E.MEMBER_ADDED],
    ),
    "membership_remove": (
        lambda w: membership_remove(actor=w.owner, room=w.room, member=w.member),
        [E.ROOM_REVOKED, E.MEMBER_REMOVED],
    ),
    "membership_role_change": (
        lambda w: membership_role_change(
            actor=w.owner, room=w.room, member=w.member, role=M.MODERATOR
        ),
        [E.MEMBER_UPDATED],
    ),
    "room_invitation_accept": (_accepted_invitation, [E.ROOM_GRANTED, E.MEMBER_ADDED]),
    "room_join": (_joined, [E.ROOM_GRANTED, E.MEMBER_ADDED]),
    "membership_mute_set": (
        lambda w: membership_mute_set(actor=w.member, room=w.room, mute="messages"),
        [E.ROOM_MUTED],
    ),
    "credentials_bump": (_bumped, [E.ACCESS_CHANGED]),
    "session_end_all": (_signed_in_then_ended, [E.ACCESS_CHANGED]),
    # a file that scans clean is shared in its room as a message; deleting it deletes that
    "file_scan": (_file_scanned, [E.MESSAGE_NEW]),
    "file_delete": (_file_deleted, [E.MESSAGE_NEW, E.MESSAGE_DELETED]),
    "user_deactivate": (
        lambda w: user_deactivate(actor=w.admin, user=w.member),
        [E.ACCESS_CHANGED],
    ),
    "password_reset_by_admin": (
        lambda w: password_reset_by_admin(actor=w.admin, user=w.member),
        [E.ACCESS_CHANGED],
    ),
    # the member's one room hears their new name
    "user_profile_update": (
        lambda w: user_profile_update(actor=w.member, first_name="Mona"),
        [E.MEMBER_UPDATED],
    ),
}


@contextlib.contextmanager
def _captured() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Delivery replaced by a recorder; on_commit callbacks run when the block ends."""
    from django.test import TestCase

    sent: list[tuple[str, dict[str, Any]]] = []
    original = events.deliver
    events.deliver = lambda group, message: sent.append((group, message))
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield sent
    finally:
        events.deliver = original


@pytest.mark.parametrize("action", ACTIONS)
def test_a_service_emits_exactly_its_events_each_as_registered(world: World, action: str) -> None:
    run, expected = ACTIONS[action]

    with _captured() as sent:
        run(world)

    assert [_check(group, message) for group, message in sent] == expected


def test_the_events_go_to_the_people_and_rooms_they_concern(world: World) -> None:
    with _captured() as sent:
        membership_remove(actor=world.owner, room=world.room, member=world.member)
        message_post(sender=world.owner, room=world.room, text="@outsider is not here")

    assert [(group, message["event"]) for group, message in sent] == [
        (user_group(world.member.pk), "room.revoked"),
        (room_group(world.room.pk), "member.removed"),
        (room_group(world.room.pk), "message.new"),  # no mention: not a member
    ]


def test_a_new_direct_conversation_is_granted_to_the_others_only(world: World) -> None:
    # given a conversation of the owner with two people
    with _captured() as sent:
        room = direct_conversation_create(
            actor=world.owner, participants=[world.member, world.outsider]
        )
    # and the same 1:1 twice: the second returns the first, and publishes nothing
    with _captured() as again:
        first = direct_conversation_create(actor=world.owner, participants=[world.member])
        assert direct_conversation_create(actor=world.owner, participants=[world.member]) == first

    # then each other participant's sockets hear of it, never the starter's
    assert sorted((group, message["room_id"]) for group, message in sent) == sorted(
        (user_group(user.pk), room.pk) for user in (world.member, world.outsider)
    )
    assert [(group, message["event"]) for group, message in again] == [
        (user_group(world.member.pk), "room.granted")
    ]


def test_nothing_is_published_before_the_commit_or_after_a_rollback(world: World) -> None:
    with _captured() as sent:
        with transaction.atomic():
            events.publish(Event.ROOM_UPDATED, room_id=world.room.pk)
            assert sent == []
        try:
            with transaction.atomic():
                events.publish(Event.ROOM_ARCHIVED, room_id=world.room.pk)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    assert [message["event"] for _, message in sent] == ["room.updated"]


@pytest.mark.parametrize(
    ("event", "to_user", "payload"),
    [
        (Event.ROOM_UPDATED, None, {"room_id": 1, "topic": "extra"}),
        (Event.MEMBER_ADDED, None, {"room_id": 1}),
        (Event.ROOM_REVOKED, None, {"room_id": 1}),  # a person's event needs its person
        (Event.MEMBER_ADDED, 7, {"room_id": 1, "user_id": 7}),  # a room's event has none
        (Event.PONG, None, {}),  # a socket's answer is never published
    ],
)
def test_a_payload_that_is_not_the_events_is_refused_at_once(
    event: Event, to_user: int | None, payload: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        events.publish(event, to_user=to_user, **payload)


def test_an_event_committed_as_its_serving_loop_closes_is_sent_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a database thread whose event loop closed after it was found running
    closed = asyncio.new_event_loop()
    closed.close()
    monkeypatch.setattr(events, "_serving_loop", lambda: closed)
    sent: list[tuple[str, dict[str, Any]]] = []

    class Layer:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            sent.append((group, message))

    monkeypatch.setattr(events, "get_channel_layer", lambda: Layer())

    # when the committed event is delivered, it neither raises nor is lost
    events.deliver("room.1", {"type": "room.event", "event": "room.updated", "room_id": 1})

    assert sent == [("room.1", {"type": "room.event", "event": "room.updated", "room_id": 1})]


def test_every_event_has_a_payload_type_an_audience_and_a_publisher() -> None:
    emitted = {event for _, expected in ACTIONS.values() for event in expected}
    answers = {e for e in Event if AUDIENCE[e] is Audience.SOCKET}

    assert set(PAYLOADS) == set(AUDIENCE) == set(Event)
    assert all(is_typeddict(kind) for kind in PAYLOADS.values())
    assert {e for e in Event if AUDIENCE[e] is Audience.ROOM} >= SOCKET_PUBLISHED
    assert emitted | SOCKET_PUBLISHED | answers == set(Event)
    assert not emitted & SOCKET_PUBLISHED


# --- the portal keys its handlers and frames by the registered names ----------------------
def _string_literals(source: str) -> Iterator[tuple[str, str]]:
    """(text, what precedes it on its line) of every JS string literal outside comments;
    a template literal counts when it has no ``${}``."""
    pattern = re.compile(
        r"//[^\n]*|/\*.*?\*/|\"((?:[^\"\\\n]|\\.)*)\"|'((?:[^'\\\n]|\\.)*)'|`((?:[^`\\]|\\.)*)`",
        re.DOTALL,
    )
    for match in pattern.finditer(source):
        if match.group(0).startswith("/"):
            continue
        text = next(g for g in match.groups() if g is not None)
        if match.group(0).startswith("`") and "${" in text:
            continue
        line_start = source.rfind("\n", 0, match.start()) + 1
        yield text, source[line_start : match.start()]


def test_chat_js_types_no_event_or_frame_name() -> None:
    names = {e.value for e in Event} | {f.value for f in Frame}

    retyped = [
        text
        for text, before in _string_literals(_chat_js())
        # A CSS class is a class (the presence dot is "presence"), not an event's name.
        if text in names and not before.rstrip().endswith("class:")
    ]

    assert retyped == []


def test_chat_js_uses_registered_names_and_handles_every_event_a_client_hears() -> None:
    source = _chat_js()

    used_events = set(re.findall(r"\bEVENT\.([A-Z_]+)", source))
    used_frames = set(re.findall(r"\bFRAME\.([A-Z_]+)", source))
    handled = set(re.findall(r"\[EVENT\.([A-Z_]+)\]:", source))

    assert used_events <= set(Event.__members__)
    assert used_frames <= set(Frame.__members__)
    assert handled == {e.name for e in Event} - {Event.ACCESS_CHANGED.name}


def test_the_portal_page_carries_the_names_in_its_data_block(world: World) -> None:
    client = Client()
    sign_in_client(client, world.member, verified=True)

    page = client.get("/rooms/").content.decode()

    block = re.search(r'<script id="socket-names" type="application/json">(.*?)</script>', page)
    assert block is not None
    assert json.loads(block.group(1)) == events.client_names()
