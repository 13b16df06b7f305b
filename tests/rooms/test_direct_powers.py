"""In a direct conversation nobody holds power over the others: every participant, the
starter too, is a member (docs/rooms.md, "Every room power")."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_deactivate
from audit.models import AuditEvent
from rooms import permissions as perms
from rooms.models import Membership, Message, Room
from rooms.permissions import room_permissions_of, room_permissions_set
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    membership_remove,
    message_delete,
    message_post,
    room_archive,
    room_key_rotate,
    room_unarchive,
    room_update,
)
from safechat.actions import Refused
from safechat.keyring.models import RoomEpoch
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

CHAT = "/"
MEMBER_POWERS = frozenset({perms.VIEW, perms.POST, perms.UPLOAD})


def denied(reason: str) -> int:
    return AuditEvent.objects.filter(action="room.access.denied", extra__reason=reason).count()


def test_every_participant_is_a_member_the_starter_too() -> None:
    starter, second, third = make_user(), make_user(), make_user()

    direct = direct_conversation_create(actor=starter, participants=[second, third])

    roles = dict(Membership.objects.filter(room=direct).values_list("user_id", "role"))
    assert roles == {p.pk: Membership.Role.MEMBER for p in (starter, second, third)}
    for person in (starter, second, third):
        assert room_permissions_of(room=direct, user=person) == MEMBER_POWERS


def test_the_starter_neither_deletes_the_others_words_nor_renames_nor_archives() -> None:
    # Given a conversation where the other participant said something
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    said = message_post(sender=other, room=direct, text="my words")
    epochs_before = RoomEpoch.objects.filter(room=direct).count()

    # When the starter tries each power an owner of a channel holds, each is refused
    with pytest.raises(Refused):
        message_delete(actor=starter, message=said)
    with pytest.raises(Refused):
        room_update(actor=starter, room=direct, name="renamed by starter")
    with pytest.raises(Refused):
        room_archive(actor=starter, room=direct)
    with pytest.raises(Refused):
        room_key_rotate(actor=starter, room=direct)

    # Then nothing changed, and each refusal is on the record
    said.refresh_from_db()
    direct.refresh_from_db()
    assert said.deleted_at is None
    assert direct.name != "renamed by starter"
    assert not direct.is_archived
    assert RoomEpoch.objects.filter(room=direct).count() == epochs_before
    assert denied("missing manage_members") == 1
    assert denied("missing manage_room") == 3


def test_everyone_still_posts_and_deletes_their_own_words() -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    mine = message_post(sender=starter, room=direct, text="mine")
    message_post(sender=other, room=direct, text="theirs")

    message_delete(actor=starter, message=mine)

    assert Message.objects.get(pk=mine.pk).deleted_at is not None


def test_the_api_refuses_deleting_another_participants_message() -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    said = message_post(sender=other, room=direct, text="my words")
    client = Client()
    sign_in_client(client, starter, verified=True)

    response = client.delete(f"/api/v1/rooms/{direct.pk}/messages/{said.pk}/")

    assert response.status_code == 403
    assert Message.objects.get(pk=said.pk).deleted_at is None


def test_the_portal_offers_no_settings_in_a_direct_conversation() -> None:
    starter, other = make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    client = Client()
    sign_in_client(client, starter, verified=True)

    page = client.get(CHAT, {"room": direct.pk}).content.decode()

    assert f"/rooms/{direct.pk}/settings/" not in page
    assert f"/rooms/{direct.pk}/archive/" not in page


def test_the_starter_of_a_direct_conversation_is_deactivated_and_removed_like_anyone() -> None:
    # no owner to keep: neither the sole-owner nor the last-owner rule applies
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    starter, other, third = make_user(), make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    walled = direct_conversation_create(actor=third, participants=[other])
    research, trading = Group.objects.create(name="R"), Group.objects.create(name="T")
    third.groups.add(research)
    other.groups.add(trading)
    barrier_create(actor=admin, group_a=research, group_b=trading)

    user_deactivate(actor=admin, user=starter)
    membership_remove(actor=admin, room=walled, member=third)  # resolving the barrier

    assert not User.objects.get(pk=starter.pk).is_active
    assert Membership.objects.filter(room=direct, user=starter).exists()  # dormant
    assert not Membership.objects.filter(room=walled, user=third).exists()


def test_a_direct_conversation_archived_before_is_unarchived_by_a_room_admin_in_it() -> None:
    # archived while starters were owners: a participant holding the room_admin role
    # (accounts.create_room) may make it writable again, nobody else
    plain, room_admin = make_user(), make_room_admin()
    direct = direct_conversation_create(actor=plain, participants=[room_admin])
    Room.objects.filter(pk=direct.pk).update(archived_at=timezone.now())
    direct.refresh_from_db()

    with pytest.raises(Refused):
        room_unarchive(actor=plain, room=direct)
    room_unarchive(actor=room_admin, room=direct)

    assert not Room.objects.get(pk=direct.pk).is_archived


def _migration() -> Any:
    return importlib.import_module("rooms.migrations.0009_direct_conversations_members_alike")


def test_the_migration_makes_existing_starters_members_and_leaves_channels() -> None:
    # Given a direct conversation made the old way (its starter an owner), and a channel
    starter, other, owner, moderator = make_user(), make_user(), make_user(), make_user()
    direct = direct_conversation_create(actor=starter, participants=[other])
    Membership.objects.filter(room=direct, user=starter).update(role=Membership.Role.OWNER)
    room_permissions_set(room=direct, user=starter, role=Membership.Role.OWNER)
    channel = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)
    assert perms.MANAGE_ROOM in room_permissions_of(room=direct, user=starter)

    # When the migration runs
    _migration().direct_participants_members(apps, None)

    # Then every participant is a member with a member's permissions; the channel is as it was
    assert set(Membership.objects.filter(room=direct).values_list("role", flat=True)) == {
        Membership.Role.MEMBER
    }
    assert room_permissions_of(room=direct, user=starter) == MEMBER_POWERS
    assert room_permissions_of(room=direct, user=other) == MEMBER_POWERS
    assert Membership.objects.get(room=channel, user=owner).role == Membership.Role.OWNER
    assert Membership.objects.get(room=channel, user=moderator).role == Membership.Role.MODERATOR
    assert perms.MANAGE_ROOM in room_permissions_of(room=channel, user=owner)
    assert perms.MANAGE_MEMBERS in room_permissions_of(room=channel, user=moderator)
    # and the starter can no longer delete the other's words
    said = message_post(sender=other, room=direct, text="mine")
    with pytest.raises(Refused):
        message_delete(actor=starter, message=said)
