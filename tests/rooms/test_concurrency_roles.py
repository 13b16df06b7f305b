"""Role edges that arrive together: real threads on PostgreSQL, released together.

A room keeps an owner who can act whatever interleaves (a role read-only on chat
granted while another owner leaves or is granted it too), and an invitation is never
accepted on the power of an inviter deactivated at the same instant.
"""

from __future__ import annotations

from functools import partial

import pytest

from accounts.models import User
from accounts.roles import Role
from accounts.services import role_grant, role_revoke, user_deactivate
from audit.models import AuditEvent
from rooms.models import Membership
from rooms.services import membership_remove, room_invitation_accept, room_invitation_send
from rooms.services.membership import acting_owners
from safechat.actions import Refused
from tests.accounts.factories import grant_role, make_user
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 8


def security_admin() -> User:
    return grant_role(make_user(), "security_admin")


@postgresql_only("the role grant and the leaving owner lock the same room row")
def test_an_owner_made_a_compliance_officer_as_the_other_leaves_leaves_one_acting() -> None:
    admin = security_admin()
    for _ in range(ROUNDS):
        # given a channel with two owners
        first, second = make_user(), make_user()
        room = make_room(owner=first, members=(second,), role=Membership.Role.OWNER)

        # when one is made a compliance officer while the other leaves
        outcomes = run_together(
            partial(role_grant, actor=admin, user=first, role=Role.COMPLIANCE_OFFICER),
            partial(membership_remove, actor=second, room=room, member=second),
        )

        # then exactly one went through, the other was refused, and an owner can act
        errors = [outcome.error for outcome in outcomes]
        assert sum(error is None for error in errors) == 1, errors
        assert all(error is None or isinstance(error, Refused) for error in errors), errors
        assert acting_owners().filter(room=room).exists()


@postgresql_only("two grants of one role lock the same group row")
def test_both_owners_made_compliance_officers_at_once_leave_one_acting() -> None:
    admin = security_admin()
    for _ in range(ROUNDS):
        # given a channel with two owners
        first, second = make_user(), make_user()
        room = make_room(owner=first, members=(second,), role=Membership.Role.OWNER)

        # when both are made compliance officers at the same instant
        outcomes = run_together(
            partial(role_grant, actor=admin, user=first, role=Role.COMPLIANCE_OFFICER),
            partial(role_grant, actor=admin, user=second, role=Role.COMPLIANCE_OFFICER),
        )

        # then one grant was refused (sole owner), and an owner can act
        errors = [outcome.error for outcome in outcomes]
        assert sum(isinstance(error, Refused) for error in errors) == 1, errors
        assert acting_owners().filter(room=room).exists()


@postgresql_only("the acceptance and the deactivation lock the inviter's row")
def test_an_invitation_is_never_accepted_after_its_inviter_was_deactivated() -> None:
    admin = security_admin()
    for _ in range(ROUNDS):
        # given a co-owner who invited someone as a moderator
        owner, inviter, invitee = make_user(), make_user(), make_user()
        room = make_room(owner=owner, members=(inviter,), role=Membership.Role.OWNER)
        invitation = room_invitation_send(
            actor=inviter, room=room, invitee=invitee, role="moderator"
        )

        # when the invitee accepts while the inviter is deactivated
        outcomes = run_together(
            partial(room_invitation_accept, actor=invitee, invitation=invitation),
            partial(user_deactivate, actor=admin, user=inviter),
        )

        # then the acceptance was refused, or it was made before the deactivation
        assert outcomes[1].error is None
        deactivated = AuditEvent.objects.get(
            action="account.deactivated", target_id=str(inviter.pk)
        )
        if outcomes[0].error is not None:
            assert isinstance(outcomes[0].error, Refused)
            assert not room.memberships.filter(user=invitee).exists()
        else:
            accepted = AuditEvent.objects.get(
                action="room.invitation.accepted", target_id=str(room.pk)
            )
            assert accepted.seq < deactivated.seq


def _active_security_admins() -> set[int]:
    return set(
        User.objects.filter(is_active=True, groups__name=Role.SECURITY_ADMIN).values_list(
            "pk", flat=True
        )
    )


@postgresql_only("each administrator's right is read again under both people's row locks")
def test_two_security_admins_deactivating_each_other_at_once_leave_one() -> None:
    for _ in range(ROUNDS):
        # given the bank's only two security admins
        User.objects.filter(groups__name=Role.SECURITY_ADMIN).update(is_active=False)
        alice, bob = security_admin(), security_admin()
        deactivated = AuditEvent.objects.filter(action="account.deactivated").count()
        refused = AuditEvent.objects.filter(action="account.admin.refused").count()

        # when each deactivates the other at the same instant
        outcomes = run_together(
            partial(user_deactivate, actor=alice, user=bob),
            partial(user_deactivate, actor=bob, user=alice),
        )

        # then one went through, the other was refused (its actor had just lost the
        # right), the refusal is on the record, and one security admin is left
        errors = [outcome.error for outcome in outcomes]
        assert sum(error is None for error in errors) == 1, errors
        assert all(error is None or isinstance(error, Refused) for error in errors), errors
        assert len(_active_security_admins()) == 1
        assert AuditEvent.objects.filter(action="account.deactivated").count() == deactivated + 1
        assert AuditEvent.objects.filter(action="account.admin.refused").count() == refused + 1


@postgresql_only("role changes lock the role group, then both people's rows")
def test_two_security_admins_revoking_each_others_role_at_once_leave_one() -> None:
    for _ in range(ROUNDS):
        # given the bank's only two security admins
        User.objects.filter(groups__name=Role.SECURITY_ADMIN).update(is_active=False)
        alice, bob = security_admin(), security_admin()

        # when each revokes the other's role at the same instant
        outcomes = run_together(
            partial(role_revoke, actor=alice, user=bob, role=Role.SECURITY_ADMIN),
            partial(role_revoke, actor=bob, user=alice, role=Role.SECURITY_ADMIN),
        )

        # then exactly one went through, the other was refused, one security admin is left
        errors = [outcome.error for outcome in outcomes]
        assert sum(error is None for error in errors) == 1, errors
        assert all(error is None or isinstance(error, Refused) for error in errors), errors
        assert len(_active_security_admins()) == 1
