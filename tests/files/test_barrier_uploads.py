"""Files and a barrier created after people came to share a room: nobody it separates
from another member shares a file there until a security admin resolves it."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from files.models import StoredFile
from files.services import file_scan, upload_append, upload_create
from rooms.errors import BarrierViolationError
from rooms.models import Message, Room
from rooms.services import barrier_create, group_create, group_members_set, membership_remove
from tests.accounts.factories import grant_role, make_user
from tests.files.helpers import pieces, upload
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db


def _wall(admin: User, banker: User, analyst: User) -> tuple[Group, Group]:
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    group_members_set(actor=admin, group=deals, add=[banker])
    group_members_set(actor=admin, group=research, add=[analyst])
    barrier_create(actor=admin, group_a=deals, group_b=research)
    return deals, research


def _refusals() -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(action="barrier.refused")
        .order_by("seq")
        .values_list("extra", flat=True)
    )


@pytest.fixture
def people() -> tuple[User, User, User, Room]:
    owner, banker, analyst = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(banker, analyst))
    return grant_role(make_user(), Role.SECURITY_ADMIN), banker, analyst, room


def test_an_upload_is_not_started_across_a_barrier(people: tuple[User, User, User, Room]) -> None:
    admin, banker, analyst, room = people
    _wall(admin, banker, analyst)

    with pytest.raises(BarrierViolationError):
        upload_create(actor=banker, room=room, length=10, name="deal.pdf")

    assert not StoredFile.objects.exists()
    assert [r["operation"] for r in _refusals()] == ["file.upload"]


def test_an_upload_begun_before_the_barrier_takes_no_more_bytes(
    people: tuple[User, User, User, Room],
) -> None:
    admin, banker, analyst, room = people
    stored = upload_create(actor=banker, room=room, length=10, name="deal.pdf")
    _wall(admin, banker, analyst)

    with pytest.raises(BarrierViolationError):
        upload_append(actor=banker, stored=stored, offset=0, body=pieces(b"0123456789", 4))

    stored.refresh_from_db()
    assert stored.received_offset == 0
    assert stored.state == StoredFile.State.UPLOADING
    assert [r["operation"] for r in _refusals()] == ["file.upload"]


def test_a_file_uploaded_before_the_barrier_is_shared_only_once_it_is_resolved(
    people: tuple[User, User, User, Room], clamd: OwnClamd
) -> None:
    # given a file the banker finished uploading just before the barrier
    admin, banker, analyst, room = people
    stored = upload(actor=banker, room=room, data=b"term sheet\n" * 50, name="terms.txt")
    _wall(admin, banker, analyst)

    # when its scan comes, it stays pending and out of the room
    assert file_scan(file_id=stored.pk) == StoredFile.State.PENDING_SCAN
    assert not Message.objects.filter(room=room).exists()

    # then once the security admin resolves the violation, it is shared
    membership_remove(actor=admin, room=room, member=analyst)
    assert file_scan(file_id=stored.pk) == StoredFile.State.AVAILABLE
    assert Message.objects.filter(room=room, sender=banker).count() == 1
