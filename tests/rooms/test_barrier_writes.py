"""A barrier created after people came to share a room: the wall holds there too.

Until a security admin resolves the violation, nobody a barrier separates from another
member of a room writes in it (posts, edits, reactions, uploads, typing); the others go
on, and everyone still reads (docs/rooms.md, "Information barriers").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client

import rooms.services.epochs as epochs
import rooms.services.messages as messages_module
from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from rooms.errors import BarrierViolationError
from rooms.models import InformationBarrier, Membership, Message, Reaction, Room, RoomInvitation
from rooms.selectors import message_page
from rooms.services import (
    barrier_create,
    barrier_delete,
    direct_conversation_create,
    group_create,
    group_members_set,
    membership_add,
    membership_remove,
    membership_role_change,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    room_archive,
    room_barrier_separating,
    room_invitation_accept,
    room_invitation_send,
    room_key_rotate,
    room_unarchive,
    room_update,
    user_groups_change,
)
from rooms.socket.database import may_type
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import user_key_create
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db


def refusals() -> list[dict[str, Any]]:
    return [
        extra
        for extra in AuditEvent.objects.filter(action="barrier.refused")
        .order_by("seq")
        .values_list("extra", flat=True)
    ]


def groups_apart(admin: User, banker: User, analyst: User) -> tuple[Group, Group]:
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    group_members_set(actor=admin, group=deals, add=[banker])
    group_members_set(actor=admin, group=research, add=[analyst])
    return deals, research


@pytest.fixture
def admin() -> User:
    return grant_role(make_user(), Role.SECURITY_ADMIN)


def test_people_a_new_barrier_separates_no_longer_write_in_their_direct_conversation(
    admin: User,
) -> None:
    # Given a banker and an analyst who already talk in a direct conversation
    banker, analyst = make_user(username="banker"), make_user(username="analyst")
    direct = direct_conversation_create(actor=banker, participants=[analyst])
    said = message_post(sender=analyst, room=direct, text="the numbers are in")
    deals, research = groups_apart(admin, banker, analyst)

    # When a barrier comes between their groups
    _barrier, violations = barrier_create(actor=admin, group_a=deals, group_b=research)

    # Then neither of them writes there any more, each refusal on the record
    assert direct.pk in violations
    messages_before = Message.objects.filter(room=direct).count()
    with pytest.raises(BarrierViolationError):
        message_post(sender=banker, room=direct, text="the deal closes friday")
    with pytest.raises(BarrierViolationError):
        message_post(sender=analyst, room=direct, text="noted")
    with pytest.raises(BarrierViolationError):
        message_edit(actor=analyst, message=said, text="the numbers are in: 42")
    with pytest.raises(BarrierViolationError):
        reaction_toggle(actor=banker, message=said, emoji="👍")
    assert Message.objects.filter(room=direct).count() == messages_before
    said.refresh_from_db()
    assert said.revision == 0
    assert not Reaction.objects.filter(message=said).exists()
    assert [(r["reason"], r["operation"]) for r in refusals()] == [
        ("information-barrier", "message.post"),
        ("information-barrier", "message.post"),
        ("information-barrier", "message.edit"),
        ("information-barrier", "reaction.toggle"),
    ]
    assert not may_type(banker, direct.pk)
    # and what was said before is still theirs to read
    assert [m.text for m in message_page(reader=banker, room=direct)] == ["the numbers are in"]


def test_the_others_in_a_room_in_violation_go_on_writing(admin: User) -> None:
    owner, banker, analyst, bystander = make_room_admin(), make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(banker, analyst, bystander))
    deals, research = groups_apart(admin, banker, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)

    message_post(sender=bystander, room=room, text="carry on")
    message_post(sender=owner, room=room, text="me too")
    assert may_type(bystander, room.pk)

    with pytest.raises(BarrierViolationError):
        message_post(sender=analyst, room=room, text="may I?")
    assert [m.text for m in message_page(reader=analyst, room=room)] == ["me too", "carry on"]


def test_removing_one_side_resolves_it_and_the_other_writes_again(admin: User) -> None:
    owner, banker, analyst = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(banker, analyst))
    deals, research = groups_apart(admin, banker, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)
    with pytest.raises(BarrierViolationError):
        message_post(sender=banker, room=room, text="before the resolution")

    membership_remove(actor=admin, room=room, member=analyst)

    message_post(sender=banker, room=room, text="after the resolution")
    assert room_barrier_separating(room_id=room.pk, user_id=banker.pk) is None


def test_lifting_the_barrier_or_leaving_the_group_lets_them_write_again(admin: User) -> None:
    banker, analyst = make_user(), make_user()
    direct = direct_conversation_create(actor=banker, participants=[analyst])
    deals, research = groups_apart(admin, banker, analyst)
    barrier, _ = barrier_create(actor=admin, group_a=deals, group_b=research)

    user_groups_change(actor=admin, user=analyst, remove=[research])
    message_post(sender=analyst, room=direct, text="out of research now")
    user_groups_change(actor=admin, user=analyst, add=[research])
    with pytest.raises(BarrierViolationError):
        message_post(sender=analyst, room=direct, text="back in research")
    barrier_delete(actor=admin, barrier=barrier)
    message_post(sender=analyst, room=direct, text="the wall is gone")

    assert Message.objects.filter(room=direct).count() == 2


def test_a_deactivated_member_still_counts_until_the_violation_is_resolved(
    admin: User,
) -> None:
    # a dormant membership comes back with a reactivation: the room stays in violation
    from accounts.services import user_deactivate

    owner, banker, analyst = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(banker, analyst))
    deals, research = groups_apart(admin, banker, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)
    user_deactivate(actor=admin, user=analyst)

    with pytest.raises(BarrierViolationError):
        message_post(sender=banker, room=room, text="are we clear?")


def test_someone_in_both_groups_of_a_barrier_is_separated_from_either_side(
    admin: User,
) -> None:
    owner, both, analyst = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(both, analyst))
    deals, research = groups_apart(admin, both, analyst)
    group_members_set(actor=admin, group=research, add=[both])
    barrier, _ = barrier_create(actor=admin, group_a=deals, group_b=research)

    assert room_barrier_separating(room_id=room.pk, user_id=analyst.pk) == barrier.pk
    assert room_barrier_separating(room_id=room.pk, user_id=both.pk) == barrier.pk
    assert room_barrier_separating(room_id=room.pk, user_id=owner.pk) is None


def test_the_api_answers_403_and_writes_nothing(admin: User) -> None:
    banker, analyst = make_user(), make_user()
    direct = direct_conversation_create(actor=banker, participants=[analyst])
    deals, research = groups_apart(admin, banker, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)
    client = Client()
    sign_in_client(client, banker, verified=True)

    response = client.post(
        f"/api/v1/rooms/{direct.pk}/messages/", {"text": "psst"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    assert not Message.objects.filter(room=direct).exists()
    assert len(refusals()) == 1


@pytest.mark.django_db(transaction=True)
@postgresql_only("the barrier's creation and the post lock the same room row")
def test_a_barrier_created_at_the_instant_of_a_post_leaves_no_post_after_it(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    # the post holds the room a while after its barrier check, so the barrier comes inside
    real_encrypt = epochs.message_encrypt

    def slow_encrypt(**kwargs: Any) -> Any:
        time.sleep(0.3)
        return real_encrypt(**kwargs)

    monkeypatch.setattr(messages_module, "message_encrypt", slow_encrypt)
    outcomes_seen = set()
    for round_ in range(6):
        # given two people sharing a room, in groups a barrier is about to separate
        banker, analyst = make_user(), make_user()
        room = make_room(owner=make_room_admin(), members=(banker, analyst), name=f"r{round_}")
        deals = group_create(actor=admin, name=f"deals{round_}")
        research = group_create(actor=admin, name=f"research{round_}")
        group_members_set(actor=admin, group=deals, add=[banker])
        group_members_set(actor=admin, group=research, add=[analyst])

        def create_barrier(delay: float, a: Group = deals, b: Group = research) -> Any:
            time.sleep(delay)
            return barrier_create(actor=admin, group_a=a, group_b=b)

        # when the barrier is created while the banker posts (first one, then the other)
        delay_post, delay_barrier = (0.0, 0.1) if round_ % 2 == 0 else (0.1, 0.0)

        def post(delay: float = delay_post, where: Room = room, who: User = banker) -> Any:
            time.sleep(delay)
            return message_post(sender=who, room=where, text="the deal closes friday")

        outcomes = run_together(post, partial(create_barrier, delay_barrier))

        # then the barrier is made, and the post either committed before it or was refused
        assert outcomes[1].error is None
        barrier_seq = AuditEvent.objects.get(
            action="barrier.created",
            target_id=str(InformationBarrier.objects.get(group_a__in=[deals, research]).pk),
        ).seq
        posted = Message.objects.filter(room=room, sender=banker)
        if outcomes[0].error is None:
            posted_seq = AuditEvent.objects.get(
                action="message.posted", target_id=str(posted.get().pk)
            ).seq
            assert posted_seq < barrier_seq
            outcomes_seen.add("posted first")
        else:
            assert isinstance(outcomes[0].error, BarrierViolationError)
            assert not posted.exists()
            outcomes_seen.add("refused")
        # and nothing by the separated person comes after it
        with pytest.raises(BarrierViolationError):
            message_post(sender=banker, room=Room.objects.get(pk=room.pk), text="later")
    assert outcomes_seen == {"posted first", "refused"}


def test_a_separated_owner_manages_nothing_in_the_room_until_it_is_resolved(
    admin: User,
) -> None:
    # given an owner and an analyst of one room, a co-owner, and a message of the analyst's;
    # then a barrier comes between the owner's group and the analyst's
    owner, co_owner, analyst, newcomer = (
        make_room_admin(username="owner"),
        make_room_admin(username="coowner"),
        make_user(username="analyst"),
        make_user(username="newcomer"),
    )
    room = room_update(
        actor=owner, room=make_room(owner=owner, members=(analyst,), name="Deal room"), topic="Q3"
    )
    membership_add(actor=owner, room=room, user=co_owner, role=Membership.Role.OWNER)
    said = message_post(sender=analyst, room=room, text="the model is ready")
    deals, research = groups_apart(admin, owner, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)
    user_key_create(user=newcomer)  # made before any check when someone is added
    epochs_before = RoomEpoch.objects.filter(room=room).count()
    members_before = sorted(Membership.objects.filter(room=room).values_list("user_id", "role"))
    events_before = AuditEvent.objects.exclude(action="barrier.refused").count()

    # when the separated owner uses each power of an owner over the room and its members
    attempts: dict[str, Callable[[], object]] = {
        "room.update": lambda: room_update(actor=owner, room=room, name="Renamed", topic="x"),
        "room.member.role": lambda: membership_role_change(
            actor=owner, room=room, member=analyst, role=Membership.Role.READ_ONLY
        ),
        "message.delete": lambda: message_delete(actor=owner, message=said),
        "room.member.remove": lambda: membership_remove(actor=owner, room=room, member=analyst),
        "room.member.add": lambda: membership_add(actor=owner, room=room, user=newcomer),
        "room.invite": lambda: room_invitation_send(actor=owner, room=room, invitee=newcomer),
        "room.key.rotate": lambda: room_key_rotate(actor=owner, room=room),
        "room.archive": lambda: room_archive(actor=owner, room=room),
    }
    for attempt in attempts.values():
        with pytest.raises(BarrierViolationError):
            attempt()

    # then each is refused on the record, naming the operation, and nothing changed
    assert [(r["reason"], r["operation"]) for r in refusals()] == [
        ("information-barrier", operation) for operation in attempts
    ]
    assert AuditEvent.objects.exclude(action="barrier.refused").count() == events_before
    room.refresh_from_db()
    said.refresh_from_db()
    assert (room.name, room.topic, room.archived_at) == ("Deal room", "Q3", None)
    assert said.deleted_at is None
    assert RoomEpoch.objects.filter(room=room).count() == epochs_before
    assert sorted(Membership.objects.filter(room=room).values_list("user_id", "role")) == (
        members_before
    )
    assert not RoomInvitation.objects.filter(room=room).exists()
    # and the co-owner, whom no barrier separates, still manages the room
    room_update(actor=co_owner, room=room, topic="Q4")
    room.refresh_from_db()
    assert room.topic == "Q4"


def test_a_separated_owner_does_not_unarchive_but_may_leave(admin: User) -> None:
    owner, co_owner, analyst = make_room_admin(), make_room_admin(), make_user()
    room = make_room(owner=owner, members=(analyst,))
    membership_add(actor=owner, room=room, user=co_owner, role=Membership.Role.OWNER)
    room_archive(actor=co_owner, room=room)
    deals, research = groups_apart(admin, owner, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)

    with pytest.raises(BarrierViolationError):
        room_unarchive(actor=owner, room=room)
    room.refresh_from_db()
    assert room.archived_at is not None
    assert [r["operation"] for r in refusals()] == ["room.unarchive"]

    room_unarchive(actor=co_owner, room=room)
    membership_remove(actor=owner, room=room, member=owner)  # leaving is never refused
    assert not Membership.objects.filter(room=room, user=owner).exists()


def test_the_api_refuses_a_separated_owner_renaming_the_room_with_403(admin: User) -> None:
    owner, analyst = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(analyst,), name="Deal room")
    deals, research = groups_apart(admin, owner, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)
    client = Client()
    sign_in_client(client, owner, verified=True)

    response = client.patch(
        f"/api/v1/rooms/{room.pk}/", {"name": "Renamed"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    room.refresh_from_db()
    assert room.name == "Deal room"
    assert [r["operation"] for r in refusals()] == ["room.update"]


def walled_admin(admin: User) -> tuple[User, User, InformationBarrier]:
    """A second security admin in ``deals``, an analyst in ``research``, a barrier between."""
    insider = grant_role(make_user(username="insider"), Role.SECURITY_ADMIN)
    insider = User.objects.get(pk=insider.pk)
    analyst = make_user(username="analyst")
    deals, research = groups_apart(admin, insider, analyst)
    barrier, _ = barrier_create(actor=admin, group_a=deals, group_b=research)
    return insider, analyst, barrier


def own_barrier_refusals() -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action="room.access.denied", extra__reason="own barrier")
        .order_by("seq")
        .values_list("extra", flat=True)
    )


def test_a_security_admin_never_lifts_a_barrier_from_themselves(admin: User) -> None:
    # given a security admin in a group a barrier sets against the analyst's
    insider, analyst, barrier = walled_admin(admin)
    research = Group.objects.get(name="research")

    # when they lift the barrier, or take the analyst out of the walled group either way
    attempts: list[Callable[[], object]] = [
        lambda: barrier_delete(actor=insider, barrier=barrier),
        lambda: group_members_set(actor=insider, group=research, remove=[analyst]),
        lambda: user_groups_change(actor=insider, user=analyst, remove=[research]),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()

    # then each is refused on the record, and the wall stands as it was
    assert [r["operation"] for r in own_barrier_refusals()] == [
        "barrier.delete",
        "group.members.set",
        "user.groups.change",
    ]
    assert InformationBarrier.objects.filter(pk=barrier.pk).exists()
    assert analyst.groups.filter(pk=research.pk).exists()
    assert not AuditEvent.objects.filter(action="barrier.deleted").exists()
    # and another security admin, whom the barrier does not name, may do it
    group_members_set(actor=admin, group=research, remove=[analyst])
    assert not analyst.groups.filter(pk=research.pk).exists()


def test_a_security_admin_does_not_resolve_a_violation_they_are_party_to(
    admin: User,
) -> None:
    # given a room the walled security admin shares with the analyst, created before
    # the barrier, so that it is in violation
    owner = make_room_admin(username="owner")
    insider = grant_role(make_user(username="insider"), Role.SECURITY_ADMIN)
    insider = User.objects.get(pk=insider.pk)
    analyst = make_user(username="analyst")
    room = make_room(owner=owner, members=(insider, analyst))
    deals, research = groups_apart(admin, insider, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)

    # when the insider removes the analyst to resolve it
    with pytest.raises(PermissionDenied):
        membership_remove(actor=insider, room=room, member=analyst)

    # then they have no power of resolution there, only a member's, and the analyst stays
    assert Membership.objects.filter(room=room, user=analyst).exists()
    refused = AuditEvent.objects.filter(action="room.access.denied").latest("seq")
    assert (refused.actor_id, refused.extra["reason"]) == (insider.pk, "missing manage_members")
    assert not AuditEvent.objects.filter(action="room.member.removed").exists()
    # and another security admin resolves it
    membership_remove(actor=admin, room=room, member=analyst)
    assert not Membership.objects.filter(room=room, user=analyst).exists()


def test_an_invitation_from_an_owner_since_separated_lends_nothing(admin: User) -> None:
    # given an owner who invited a colleague as moderator, then a barrier between the
    # owner and an analyst of the room
    owner, analyst, invitee = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(analyst,))
    invitation = room_invitation_send(
        actor=owner, room=room, invitee=invitee, role=Membership.Role.MODERATOR
    )
    deals, research = groups_apart(admin, owner, analyst)
    barrier_create(actor=admin, group_a=deals, group_b=research)

    # when the colleague accepts
    with pytest.raises(PermissionDenied):
        room_invitation_accept(actor=invitee, invitation=invitation)

    # then they are not in the room, and the refusal names the inviter
    assert not Membership.objects.filter(room=room, user=invitee).exists()
    refused = AuditEvent.objects.get(
        action="room.access.denied", extra__reason="inviter no longer entitled"
    )
    assert refused.extra["inviter"] == owner.pk


def test_a_barrier_never_names_a_role_so_no_role_change_lifts_a_wall(admin: User) -> None:
    # given a group of people and a role's group (roles are groups too)
    deals = group_create(actor=admin, name="deals")
    room_admins = Group.objects.get(name=Role.ROOM_ADMIN.value)
    security_admins = Group.objects.get(name=Role.SECURITY_ADMIN.value)

    # when a barrier is asked between them, either way round, or against the admins' role
    for group_a, group_b in ((deals, room_admins), (room_admins, deals), (deals, security_admins)):
        with pytest.raises(PermissionDenied):
            barrier_create(actor=admin, group_a=group_a, group_b=group_b)

    # then none is made (granting or revoking a role can never make or lift a wall, and the
    # security admins' own role can never be walled off where none of them may lift it),
    # each refusal is on the record, and the admin's form offers no role
    assert not InformationBarrier.objects.exists()
    refused = AuditEvent.objects.filter(action="room.access.denied", extra__reason="role group")
    assert refused.count() == 3
    client = Client()
    sign_in_client(client, admin, verified=True)
    page = client.get("/admin/rooms/informationbarrier/add/").content.decode()
    assert ">deals<" in page
    assert f">{Role.ROOM_ADMIN.value}<" not in page


def test_lifting_several_barriers_in_the_admin_tells_each_refusal_and_lifts_the_others(
    admin: User,
) -> None:
    # given a barrier naming the insider's group, and one that does not name them
    insider, _analyst, own = walled_admin(admin)
    ops, misc = group_create(actor=admin, name="ops"), group_create(actor=admin, name="misc")
    other, _ = barrier_create(actor=admin, group_a=ops, group_b=misc)
    client = Client()
    sign_in_client(client, insider, verified=True)

    # when the insider selects both on the barrier page and lifts them
    answer = client.post(
        "/admin/rooms/informationbarrier/",
        {"action": "delete_barriers", "_selected_action": [own.pk, other.pk]},
    )

    # then the page stays in the admin and says what was refused (as every admin action
    # does), rather than an error page over a change half made
    assert answer.status_code == 302
    assert InformationBarrier.objects.filter(pk=own.pk).exists()
    assert not InformationBarrier.objects.filter(pk=other.pk).exists()
    assert [r["operation"] for r in own_barrier_refusals()] == ["barrier.delete"]


def test_the_group_page_refuses_lifting_a_wall_from_oneself_as_a_form_error(
    admin: User,
) -> None:
    # given the walled security admin on the page of the analyst's group
    insider, analyst, _barrier = walled_admin(admin)
    research = Group.objects.get(name="research")
    client = Client()
    sign_in_client(client, insider, verified=True)

    # when they save it with the analyst taken out
    answer = client.post(
        f"/admin/auth/group/{research.pk}/change/", {"name": "research", "members": []}
    )

    # then the page answers with the reason beside the form, and nothing changed
    assert answer.status_code == 200
    assert "would lift an information barrier from you" in answer.content.decode()
    assert analyst.groups.filter(pk=research.pk).exists()
    assert not AuditEvent.objects.filter(action="account.role.revoked").exists()
