"""Deleting another's file is a power over the room: the wall holds there too.

A moderator or owner an information barrier separates from another member of the room
deletes no one else's file (nor, with it, the message that shares it) until a security
admin resolves the violation; their own file they may still retract, as their own
messages (docs/rooms.md, "Information barriers").
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from files.models import StoredFile
from files.services import file_delete
from rooms.errors import BarrierViolationError
from rooms.models import Membership, Message, Room
from rooms.services import barrier_create, group_create, group_members_set, membership_add
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.files.helpers import upload_and_scan
from tests.rooms.factories import make_room, make_room_admin
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db


def _barrier_refusals() -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action="barrier.refused")
        .order_by("seq")
        .values_list("extra", flat=True)
    )


@pytest.fixture
def shared(clamd: OwnClamd) -> tuple[User, User, Room, StoredFile]:
    """A room where the analyst shared a file, a moderator there, and then a barrier
    between the moderator's group and the analyst's."""
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    owner, moderator, analyst = make_room_admin(), make_user(), make_user()
    room = make_room(owner=owner, members=(analyst,))
    membership_add(actor=owner, room=room, user=moderator, role=Membership.Role.MODERATOR)
    stored = upload_and_scan(actor=analyst, room=room, data=b"the model\n" * 40, name="m.txt")
    assert stored.state == StoredFile.State.AVAILABLE
    assert stored.message_id is not None
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    group_members_set(actor=admin, group=deals, add=[moderator])
    group_members_set(actor=admin, group=research, add=[analyst])
    barrier_create(actor=admin, group_a=deals, group_b=research)
    return moderator, analyst, room, stored


def test_a_separated_moderator_deletes_no_one_elses_file(
    shared: tuple[User, User, Room, StoredFile],
) -> None:
    # given a moderator a barrier separates from the analyst who shared a file
    moderator, _analyst, _room, stored = shared
    events_before = AuditEvent.objects.count()

    # when the moderator deletes the analyst's file
    with pytest.raises(BarrierViolationError):
        file_delete(actor=moderator, stored=stored)

    # then the file and its message stay, and only the refusal is on the record
    stored.refresh_from_db()
    assert stored.state == StoredFile.State.AVAILABLE
    assert Message.objects.filter(attachment=stored, deleted_at__isnull=True).exists()
    # (named as the deletion of another's message it is, or of their file)
    assert [r["operation"] for r in _barrier_refusals()] in (["message.delete"], ["file.delete"])
    assert AuditEvent.objects.count() == events_before + 1


def test_the_api_refuses_a_separated_moderator_deleting_anothers_file_with_403(
    shared: tuple[User, User, Room, StoredFile],
) -> None:
    # given the separated moderator, signed in
    moderator, _analyst, room, stored = shared
    client = Client()
    sign_in_client(client, moderator, verified=True)

    # when they delete the analyst's file through the API
    response = client.delete(f"/api/v1/rooms/{room.pk}/files/{stored.uid}/")

    # then it is refused, and nothing changed
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/problem+json")
    stored.refresh_from_db()
    assert stored.state == StoredFile.State.AVAILABLE
    assert Message.objects.filter(attachment=stored, deleted_at__isnull=True).exists()
    assert not AuditEvent.objects.filter(action__in=["file.deleted", "message.deleted"]).exists()
    assert len(_barrier_refusals()) == 1


def test_a_separated_uploader_still_retracts_their_own_file(
    shared: tuple[User, User, Room, StoredFile],
) -> None:
    # given the analyst, separated from the moderator, and their own file
    _moderator, analyst, _room, stored = shared

    # when they delete it
    file_delete(actor=analyst, stored=stored)

    # then it is gone from the room, as their own message would be
    stored.refresh_from_db()
    assert stored.state == StoredFile.State.DELETED
    assert not _barrier_refusals()
