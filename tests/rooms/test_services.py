"""Room services: permissions by role, barriers, messages, revisions, reactions, markers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from pytest_django import Settings

from audit.models import AuditEvent
from rooms.errors import BarrierViolationError, RateLimitedError, UnreachableError
from rooms.models import Membership, Mention, Message, MessageRevision, Room, RoomInvitation
from rooms.selectors import message_page, message_revisions, message_view, room_list_for_user
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    membership_add,
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
)
from rooms.wire import message_json, message_rendered
from safechat.unicode_text import BIDI_EXPLICIT
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.commit_callbacks import broadcasts

pytestmark = pytest.mark.django_db


def security_admin() -> object:
    from accounts.models import User
    from accounts.roles import Role

    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    return User.objects.get(pk=admin.pk)


def walled_groups(research: object, trading: object) -> None:
    """Put ``research`` and ``trading`` on two sides of an information barrier."""
    a, _ = Group.objects.get_or_create(name="Research")
    b, _ = Group.objects.get_or_create(name="Trading")
    research.groups.add(a)  # type: ignore[attr-defined]
    trading.groups.add(b)  # type: ignore[attr-defined]
    barrier_create(actor=security_admin(), group_a=a, group_b=b, reason="MAR wall")  # type: ignore[arg-type]


def test_a_plain_member_cannot_create_rooms_and_nothing_is_written() -> None:
    member = make_user()
    rooms_before = Room.objects.count()

    with pytest.raises(PermissionDenied):
        room_create(actor=member, name="Shadow desk")

    assert Room.objects.count() == rooms_before
    assert not AuditEvent.objects.filter(action="room.created").exists()
    assert AuditEvent.objects.filter(action="room.access.denied", actor_id=member.pk).exists()


def test_members_can_create_rooms_when_the_setting_allows_it(settings: Settings) -> None:
    settings.SAFECHAT_MEMBERS_CAN_CREATE_ROOMS = True

    room = room_create(actor=make_user(), name="Open desk")

    assert room.memberships.get().role == Membership.Role.OWNER


def test_a_read_only_member_reads_but_cannot_post(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,), role=Membership.Role.READ_ONLY)
    posted = message_post(sender=owner, room=room, text="for your eyes")

    with django_capture_on_commit_callbacks() as queued, pytest.raises(PermissionDenied):
        message_post(sender=reader, room=room, text="can I?")

    assert Message.objects.filter(room=room).count() == 1
    assert broadcasts(queued) == []  # nothing broadcast
    room.refresh_from_db()
    assert room.message_seq == 1
    refusal = AuditEvent.objects.get(action="room.access.denied", actor_id=reader.pk)
    assert refusal.extra["reason"] == "missing post_message"
    assert message_view(reader=reader, message=posted).text == "for your eyes"


def test_each_room_numbers_its_messages_without_gaps() -> None:
    owner, member = make_user(), make_user()
    desk, other = make_room(owner=owner, members=(member,)), make_room(owner=owner)
    read_only = make_user()
    membership_add(actor=owner, room=desk, user=read_only, role="read_only")

    first = message_post(sender=owner, room=desk, text="one")
    message_post(sender=owner, room=other, text="elsewhere")
    with pytest.raises(PermissionDenied):
        message_post(sender=read_only, room=desk, text="refused")
    second = message_post(sender=member, room=desk, text="two")

    assert (first.seq, second.seq) == (1, 2)  # a refused post takes no number
    assert Message.objects.get(room=other).seq == 1
    desk.refresh_from_db()
    assert desk.message_seq == 2


def test_an_information_barrier_blocks_membership_direct_messages_and_invitations() -> None:
    researcher, trader, owner = make_user(), make_user(), make_room_admin()
    walled_groups(researcher, trader)
    room = make_room(owner=owner, members=(researcher,))
    members_before = Membership.objects.count()
    rooms_before = Room.objects.count()

    # each recorded as barrier.refused, answered as for an id that names nobody
    with pytest.raises(UnreachableError):
        membership_add(actor=owner, room=room, user=trader)
    with pytest.raises(UnreachableError):
        direct_conversation_create(actor=researcher, participants=[trader])
    with pytest.raises(UnreachableError):
        room_invitation_send(actor=owner, room=room, invitee=trader)

    assert Membership.objects.count() == members_before
    assert Room.objects.count() == rooms_before
    assert not RoomInvitation.objects.exists()
    assert AuditEvent.objects.filter(action="barrier.refused").count() == 3
    assert (
        not AuditEvent.objects.filter(action="room.member.added", target_id=str(room.pk))
        .exclude(extra__member=researcher.pk)
        .exists()
    )


def test_an_invitation_made_before_a_barrier_is_refused_on_acceptance() -> None:
    researcher, trader, owner = make_user(), make_user(), make_room_admin()
    room = make_room(owner=owner, members=(researcher,))
    invitation = room_invitation_send(actor=owner, room=room, invitee=trader)
    walled_groups(researcher, trader)

    with pytest.raises(BarrierViolationError):
        room_invitation_accept(actor=trader, invitation=invitation)

    assert not Membership.objects.filter(room=room, user=trader).exists()


def test_accepting_another_persons_invitation_is_refused_and_recorded() -> None:
    owner, invitee, other = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner)
    invitation = room_invitation_send(actor=owner, room=room, invitee=invitee)
    denied_before = AuditEvent.objects.filter(action="room.access.denied").count()

    with pytest.raises(PermissionDenied, match="this invitation is not yours"):
        room_invitation_accept(actor=other, invitation=invitation)

    assert not Membership.objects.filter(room=room, user=other).exists()
    assert RoomInvitation.objects.filter(pk=invitation.pk).exists()
    refusals = AuditEvent.objects.filter(action="room.access.denied").order_by("seq")
    assert refusals.count() == denied_before + 1
    assert refusals.last().extra == {"reason": "invitation of another"}  # type: ignore[union-attr]
    assert not AuditEvent.objects.filter(action="room.member.added", actor_id=other.pk).exists()


def test_a_new_barrier_reports_the_rooms_that_now_violate_it() -> None:
    researcher, trader, owner = make_user(), make_user(), make_room_admin()
    room = make_room(owner=owner, members=(researcher, trader))
    a, b = Group.objects.create(name="R"), Group.objects.create(name="T")
    researcher.groups.add(a)
    trader.groups.add(b)

    _barrier, violations = barrier_create(actor=security_admin(), group_a=a, group_b=b)  # type: ignore[arg-type]

    assert list(violations) == [room.pk]


def test_an_edit_keeps_every_revision_encrypted_and_readable_by_members() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=owner, room=room, text="price 100")

    message_edit(actor=owner, message=message, text="price 101")
    message_edit(actor=owner, message=message, text="price 102")

    message.refresh_from_db()
    assert message_view(reader=member, message=message).text == "price 102"
    assert message_revisions(reader=member, message=message) == [(0, "price 100"), (1, "price 101")]
    assert MessageRevision.objects.filter(message=message).count() == 2


def test_nobody_edits_someone_elses_message_and_nothing_changes() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=owner, room=room, text="original")

    with pytest.raises(PermissionDenied):
        message_edit(actor=member, message=message, text="forged")

    message.refresh_from_db()
    assert message.revision == 0
    assert message_view(reader=owner, message=message).text == "original"
    assert not AuditEvent.objects.filter(action="message.edited").exists()


def test_a_deleted_message_is_hidden_from_members_but_kept() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=member, room=room, text="oops")

    message_delete(actor=member, message=message)

    assert [m.id for m in message_page(reader=owner, room=room)] == []
    assert Message.objects.filter(pk=message.pk, deleted_at__isnull=False).exists()


def test_a_member_cannot_delete_someone_elses_message_but_a_moderator_can() -> None:
    owner, member, moderator = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    membership_add(actor=owner, room=room, user=moderator, role=Membership.Role.MODERATOR)
    message = message_post(sender=owner, room=room, text="keep me")

    with pytest.raises(PermissionDenied):
        message_delete(actor=member, message=message)
    assert Message.objects.get(pk=message.pk).deleted_at is None

    message_delete(actor=moderator, message=message)
    assert Message.objects.get(pk=message.pk).deleted_at is not None


def test_messages_are_validated_and_nothing_is_stored_on_bad_input() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    for bad in ["", "   ", "x" * (16 * 1024 + 1)]:
        with pytest.raises(ValidationError):
            message_post(sender=owner, room=room, text=bad)

    assert not Message.objects.filter(room=room).exists()


@pytest.mark.parametrize(
    "text",
    [
        "\u200b",
        "\ufeff",
        "\u200b \u2060\u00ad",
        "\u3164",
        "\u0007",
        "hi\u0007",
        "a\x1bb",
        "x\u0085",
    ],
    ids=["zwsp", "bom", "invisibles", "filler", "bell", "bell-inside", "escape", "c1"],
)
def test_a_message_of_invisible_characters_or_with_a_control_character_is_refused(
    text: str,
) -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(ValidationError) as refused:
        message_post(sender=owner, room=room, text=text)

    assert list(refused.value.error_dict) == ["text"]
    assert not Message.objects.filter(room=room).exists()


def test_line_breaks_and_tabs_are_text() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    message = message_post(sender=owner, room=room, text="a\tb\nc\r\nd \u200bemoji \U0001f44d")

    assert Message.objects.filter(pk=message.pk).exists()


def test_mentions_notify_members_only() -> None:
    owner, alice, outsider = make_user(), make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=owner, members=(alice,))

    message = message_post(sender=owner, room=room, text="@alice and @bob, look")

    assert list(Mention.objects.filter(message=message).values_list("user_id", flat=True)) == [
        alice.pk
    ]
    assert outsider.pk not in Mention.objects.values_list("user_id", flat=True)


def test_replies_form_one_level_threads() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    root = message_post(sender=owner, room=room, text="root")
    reply = message_post(sender=owner, room=room, text="reply", parent_id=root.pk)

    nested = message_post(sender=owner, room=room, text="nested", parent_id=reply.pk)

    assert reply.parent_id == root.pk
    assert nested.parent_id == root.pk


def test_reactions_toggle_and_read_markers_only_move_forward() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    first = message_post(sender=owner, room=room, text="one")
    second = message_post(sender=owner, room=room, text="two")

    assert reaction_toggle(actor=member, message=first, emoji="👍") is True
    assert message_view(reader=owner, message=first).reactions == {"👍": [member.pk]}
    assert reaction_toggle(actor=member, message=first, emoji="👍") is False

    assert read_marker_set(actor=member, room=room, message_id=second.pk) == second.pk
    assert read_marker_set(actor=member, room=room, message_id=first.pk) == second.pk
    assert room_list_for_user(user=member).get(pk=room.pk).unread == 0  # type: ignore[attr-defined]
    assert room_list_for_user(user=owner).get(pk=room.pk).unread == 0  # type: ignore[attr-defined]


def test_a_read_marker_on_a_message_from_before_ones_time_is_refused_as_unknown() -> None:
    # given a room hiding history, a message in it, then a newcomer
    owner, newcomer = make_user(), make_user()
    room = make_room(owner=owner, history_visible=False)
    before = message_post(sender=owner, room=room, text="before your time")
    membership_add(actor=owner, room=room, user=newcomer)
    after = message_post(sender=owner, room=room, text="welcome")
    marker = Membership.objects.get(room=room, user=newcomer).last_read_message_id

    # when the newcomer marks the message posted before they joined, then one that
    # names nothing: each refused alike, and the marker stays where it was
    refusals = []
    for message_id in (before.pk, after.pk + 1000):
        with pytest.raises(ValidationError) as refused:
            read_marker_set(actor=newcomer, room=room, message_id=message_id)
        refusals.append(refused.value.messages)
    assert refusals[0] == refusals[1]
    assert Membership.objects.get(room=room, user=newcomer).last_read_message_id == marker
    # and a message of their time moves it
    assert read_marker_set(actor=newcomer, room=room, message_id=after.pk) == after.pk


def test_unread_counts_what_others_posted_after_the_marker() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    for text in ("a", "b", "c"):
        message_post(sender=owner, room=room, text=text)

    assert room_list_for_user(user=member).get(pk=room.pk).unread == 3  # type: ignore[attr-defined]


def test_an_archived_room_is_read_only() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="last words")

    room_archive(actor=owner, room=room)

    with pytest.raises(PermissionDenied):
        message_post(sender=owner, room=room, text="after archive")
    assert [m.text for m in message_page(reader=owner, room=room)] == ["last words"]


def test_nobody_changes_their_own_room_role() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    with pytest.raises(PermissionDenied):
        membership_role_change(actor=owner, room=room, member=owner, role=Membership.Role.MEMBER)

    assert Membership.objects.get(room=room, user=owner).role == Membership.Role.OWNER


def test_posting_faster_than_the_limit_is_refused_and_stores_nothing(settings: Settings) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (3, 60)
    owner = make_user()
    room = make_room(owner=owner)
    for i in range(3):
        message_post(sender=owner, room=room, text=f"m{i}")

    with pytest.raises(RateLimitedError):
        message_post(sender=owner, room=room, text="one too many")

    assert Message.objects.filter(room=room).count() == 3


def test_a_direct_conversation_is_reused_for_the_same_two_people() -> None:
    alice, bob = make_user(), make_user()

    first = direct_conversation_create(actor=alice, participants=[bob])
    again = direct_conversation_create(actor=bob, participants=[alice])

    assert first.pk == again.pk
    assert first.kind == Room.Kind.DIRECT


def test_a_group_conversation_of_the_two_is_not_taken_for_theirs() -> None:
    # given Alice and Bob in a group conversation with Aaron, whose stored name sorts
    # before their own conversation's ("aaron, alice, bob" < "alice, bob"), and their 1:1
    alice, bob, aaron = (
        make_user(username="alice"),
        make_user(username="bob"),
        make_user(username="aaron"),
    )
    group = direct_conversation_create(actor=alice, participants=[bob, aaron])
    first = direct_conversation_create(actor=alice, participants=[bob])

    # when either asks for their conversation again
    again = direct_conversation_create(actor=bob, participants=[alice])

    # then it is theirs, not the group's, and no third room was made
    assert again.pk == first.pk != group.pk
    assert Room.objects.filter(kind=Room.Kind.DIRECT).count() == 2


def test_markdown_is_rendered_sanitised_and_never_loads_anything() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    text = "**bold** <script>alert(1)</script> ![x](https://evil.example/p.png) [l](javascript:x)"

    view = message_rendered(
        message_view(reader=owner, message=message_post(sender=owner, room=room, text=text))
    )

    assert view.html is not None
    assert message_json(view)["html"] == view.html
    assert "<strong>bold</strong>" in view.html
    assert "<script" not in view.html
    assert "<img" not in view.html
    assert 'href="javascript' not in view.html
    assert 'rel="noopener noreferrer nofollow"' in view.html


def test_the_fast_message_json_matches_the_documented_serializer() -> None:
    from rooms.api.serializers import MessageOutput

    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="*same* shape")
    reaction_toggle(actor=owner, message=message, emoji="👌")
    message_edit(actor=owner, message=message, text="*same* shape, edited")
    message.refresh_from_db()

    view = message_view(reader=owner, message=message)

    assert message_json(view) == dict(MessageOutput(message_rendered(view)).data)


@pytest.mark.parametrize("control", sorted(BIDI_EXPLICIT))
def test_a_message_that_could_show_a_number_reversed_is_refused(control: str) -> None:
    # given a member about to post an account number wrapped in a direction control
    owner = make_user()
    room = make_room(owner=owner)
    original = message_post(sender=owner, room=room, text="pay to account 1234-5678")

    # when they post it, or edit a message into it
    text = f"pay to account {control}1234-5678\u202c ok"
    with pytest.raises(ValidationError) as posted:
        message_post(sender=owner, room=room, text=text)
    with pytest.raises(ValidationError):
        message_edit(actor=owner, message=original, text=text)

    # then it is refused with a reason, and nothing was stored
    assert "direction control" in posted.value.messages[0]
    assert Message.objects.filter(room=room).count() == 1
    assert not MessageRevision.objects.filter(message=original).exists()


def test_right_to_left_writing_with_its_implicit_marks_is_posted() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    hebrew = "\u05e9\u05dc\u05d5\u05dd \u200f\u05e2\u05d5\u05dc\u05dd 42\u200e"  # "shalom olam"

    message = message_post(sender=owner, room=room, text=hebrew)

    assert message_view(reader=owner, message=message).text == hebrew
