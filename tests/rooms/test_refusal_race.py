"""A refusal raised inside the action's transaction, as in a race, is recorded exactly once.

The barrier re-check in ``_membership_insert`` runs under the locks, inside the action's
transaction: when it is the check that refuses (a barrier or a member that appeared since
the caller looked), the refused action rolls back and its ``barrier.refused`` event must
not roll back with it. Transactional tests: the rollback is the real one.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from rooms import permissions as perms
from rooms.errors import BarrierViolationError, UnreachableError
from rooms.models import Membership, Room, RoomInvitation
from rooms.services import barrier_create, membership_add, room_invitation_send
from rooms.services._common import room_refused
from rooms.services.membership import _membership_insert, room_invitation_accept
from safechat.keyring.models import SealedEpochKey
from safechat.keyring.services import user_key_create
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db(transaction=True)


def _security_admin() -> User:
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    return User.objects.get(pk=admin.pk)


def _wall(research: User, trading: User) -> None:
    a, b = Group.objects.create(name="Research"), Group.objects.create(name="Trading")
    research.groups.add(a)
    trading.groups.add(b)
    barrier_create(actor=_security_admin(), group_a=a, group_b=b, reason="MAR wall")


def _new_events(since: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__gt=since).order_by("seq").values_list("action", flat=True)
    )


def _last_seq() -> int:
    last = AuditEvent.objects.order_by("-seq").first()
    return 0 if last is None else last.seq


def test_the_insert_path_refused_by_its_barrier_recheck_leaves_one_event_and_no_member() -> None:
    researcher, trader, owner = make_user(), make_user(), make_room_admin()
    room = make_room(owner=owner, members=(researcher,))
    _wall(researcher, trader)
    user_key_create(user=trader)
    members_before = set(Membership.objects.values_list("pk", flat=True))
    since = _last_seq()

    with pytest.raises(UnreachableError):  # recorded as what it is, answered as nobody
        _membership_insert(
            actor=owner, room=room, user=trader, role="member", permission=perms.MANAGE_MEMBERS
        )

    assert _new_events(since) == ["barrier.refused"]
    refusal = AuditEvent.objects.get(seq__gt=since)
    assert refusal.actor_id == owner.pk
    assert refusal.target_id == str(room.pk)
    assert refusal.extra["reason"] == "information-barrier"
    assert set(Membership.objects.values_list("pk", flat=True)) == members_before
    assert not SealedEpochKey.objects.filter(user=trader).exists()


def test_an_invitation_refused_on_acceptance_by_a_newer_barrier_leaves_one_event() -> None:
    researcher, trader, owner = make_user(), make_user(), make_room_admin()
    room = make_room(owner=owner, members=(researcher,))
    invitation = room_invitation_send(actor=owner, room=room, invitee=trader)
    _wall(researcher, trader)  # after the invitation: only the acceptance's re-check sees it
    user_key_create(user=trader)
    since = _last_seq()

    with pytest.raises(BarrierViolationError):
        room_invitation_accept(actor=trader, invitation=invitation)

    assert _new_events(since) == ["barrier.refused"]
    assert AuditEvent.objects.get(seq__gt=since).actor_id == trader.pk
    assert not Membership.objects.filter(room=room, user=trader).exists()
    assert RoomInvitation.objects.filter(pk=invitation.pk).exists()  # the deletion rolled back


def test_a_refusal_after_the_actions_writes_rolls_them_back_and_is_still_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a refusal raised deep in the insert, after the membership row was written
    owner, newcomer = make_room_admin(), make_user()
    room = make_room(owner=owner)
    user_key_create(user=newcomer)

    def refuse_late(*, room: Room, user: User) -> int:
        assert Membership.objects.filter(room=room, user=user).exists()  # written by now
        raise room_refused(actor=owner, room=room, reason="late", message="refused late")

    monkeypatch.setattr("rooms.services.membership.room_keys_grant", refuse_late)
    since = _last_seq()

    with pytest.raises(PermissionDenied, match="refused late"):
        membership_add(actor=owner, room=room, user=newcomer)

    # Then the membership and its permissions rolled back; the refusal alone is recorded
    assert not Membership.objects.filter(room=room, user=newcomer).exists()
    assert not perms.has_room_permission(room=room, user=newcomer, permission=perms.VIEW)
    assert _new_events(since) == ["room.access.denied"]
    assert AuditEvent.objects.get(seq__gt=since).extra == {"reason": "late"}
