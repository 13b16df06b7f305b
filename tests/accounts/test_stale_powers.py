"""A power is read again under a lock at the moment it is used: an administrator
deactivated or demoted while their request runs changes nothing, and an invitation
lapses with its author's power."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import Invitation, User
from accounts.roles import Role
from accounts.selectors import lockouts_active
from accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    lockout_lift,
    role_grant,
    role_revoke,
    user_deactivate,
    user_reactivate,
)
from accounts.services._common import InvalidLink
from rooms.models import InformationBarrier
from rooms.services import barrier_create, barrier_delete, group_create, group_members_set
from tests.accounts.conftest import actions, events
from tests.accounts.factories import grant_role, make_user

pytestmark = pytest.mark.django_db
PASSWORD = "x9-long-enough-pass!"


def accept_request() -> HttpRequest:
    request = RequestFactory().post("/accounts/invitation/x/")
    request.session = SessionStore()
    return request


def lose_power(how: str, *, admin: User, by: User) -> None:
    if how == "deactivated":
        user_deactivate(actor=by, user=admin)
    else:
        role_revoke(actor=by, user=admin, role=Role.SECURITY_ADMIN)


@pytest.mark.parametrize("how", ["deactivated", "demoted"])
def test_an_invitation_lapses_when_its_author_loses_the_power(how: str) -> None:
    # given a security admin's invitation of a new security admin
    mallory = grant_role(make_user(username="mallory"), Role.SECURITY_ADMIN)
    olivia = grant_role(make_user(username="olivia"), Role.SECURITY_ADMIN)
    _invitation, token = invitation_create(
        actor=mallory, email="accomplice@bank.example", role=Role.SECURITY_ADMIN
    )

    # when mallory loses the power, then the link is used
    lose_power(how, admin=mallory, by=olivia)
    with pytest.raises(InvalidLink):
        invitation_accept(
            request=accept_request(), token=token, username="accomplice", password=PASSWORD
        )

    # then no account was made: the invitation was revoked with the loss of the power,
    # and the refusal is on the record with that reason
    assert not User.objects.filter(username="accomplice").exists()
    assert [e.extra["reason"] for e in events("account.invitation.refused")] == ["revoked"]
    assert "account.created" not in actions()


def test_a_revoked_invitation_creates_nothing() -> None:
    # given a pending invitation
    sam = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    invitation, token = invitation_create(actor=sam, email="new@bank.example", role=Role.MEMBER)

    # when a security admin revokes it, then it is used
    assert invitation_revoke(actor=sam, invitation=invitation)
    with pytest.raises(InvalidLink):
        invitation_accept(request=accept_request(), token=token, username="new", password=PASSWORD)

    # then nothing was made; the revocation and the refusal are on the record
    assert not User.objects.filter(username="new").exists()
    assert Invitation.objects.get(pk=invitation.pk).revoked_by_id == sam.pk
    assert [e.extra["reason"] for e in events("account.invitation.refused")] == ["revoked"]
    assert len(events("account.invitation.revoked")) == 1
    # and revoking it again does nothing, recorded once only
    assert not invitation_revoke(actor=sam, invitation=invitation)
    assert len(events("account.invitation.revoked")) == 1


def test_only_a_security_admin_revokes_an_invitation() -> None:
    sam = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    rita = grant_role(make_user(username="rita"), Role.ROOM_ADMIN)
    invitation, _token = invitation_create(actor=sam, email="n@bank.example", role=Role.MEMBER)

    with pytest.raises(PermissionDenied):
        invitation_revoke(actor=rita, invitation=invitation)

    assert Invitation.objects.get(pk=invitation.pk).revoked_at is None
    assert not events("account.invitation.revoked")
    assert [e.extra["reason"] for e in events("account.admin.refused")] == ["permission"]


def test_a_request_of_a_demoted_admin_changes_no_barrier_and_no_group() -> None:
    # given two security admins, a barrier, and the request object of one of them
    stale = grant_role(make_user(username="stale"), Role.SECURITY_ADMIN)
    other = grant_role(make_user(username="other"), Role.SECURITY_ADMIN)
    deals, research = (
        group_create(actor=other, name="deals"),
        group_create(actor=other, name="research"),
    )
    barrier, _ = barrier_create(actor=other, group_a=deals, group_b=research)
    assert stale.has_perm("accounts.manage_users")  # as the request authenticated it
    victim = make_user(username="victim")
    before = len(actions())

    # when the other admin revokes stale's role, and stale's request goes on
    role_revoke(actor=other, user=stale, role=Role.SECURITY_ADMIN)
    attempts: list[Callable[[], object]] = [
        lambda: group_members_set(actor=stale, group=deals, add=[victim]),
        lambda: barrier_delete(actor=stale, barrier=barrier),
        lambda: barrier_create(actor=stale, group_a=deals, group_b=group_create(
            actor=other, name="sales")),
        lambda: group_create(actor=stale, name="ghosts"),
    ]  # fmt: skip
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()

    # then nothing changed, and each refusal is on the record
    assert InformationBarrier.objects.filter(pk=barrier.pk).exists()
    assert InformationBarrier.objects.count() == 1
    assert not victim.groups.exists()
    assert not deals.__class__.objects.filter(name="ghosts").exists()
    written = actions()[before:]
    assert "barrier.deleted" not in written
    assert "barrier.created" not in written
    assert written.count("room.access.denied") == 4


def test_a_request_of_a_deactivated_admin_invites_nobody_and_lifts_no_lockout() -> None:
    stale = grant_role(make_user(username="stale"), Role.SECURITY_ADMIN)
    other = grant_role(make_user(username="other"), Role.SECURITY_ADMIN)
    request_user = User.objects.get(pk=stale.pk)  # what the request authenticated
    assert request_user.has_perm("accounts.manage_users")
    user_deactivate(actor=other, user=stale)  # committed meanwhile

    with pytest.raises(PermissionDenied):
        invitation_create(actor=request_user, email="x@bank.example", role=Role.SECURITY_ADMIN)
    with pytest.raises(PermissionDenied):
        lockout_lift(actor=request_user, ip_address="198.51.100.1")

    assert not Invitation.objects.exists()
    assert "account.invited" not in actions()
    assert "auth.lockout.lifted" not in actions()


def test_nobody_lifts_their_own_lockout_by_its_address() -> None:
    # given a security admin locked out from an address, beside someone else's lockout
    sam = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    for username, address in (("sam", "203.0.113.9"), ("bob", "203.0.113.7")):
        AccessAttempt.objects.create(
            username=username, ip_address=address, user_agent="x", failures_since_start=12,
            attempt_time=timezone.now(), get_data="", post_data="", path_info="/accounts/sign-in/",
        )  # fmt: skip

    # when sam lifts the lockout of that address
    with pytest.raises(PermissionDenied):
        lockout_lift(actor=sam, ip_address="203.0.113.9")

    # then it is refused as their own, and nothing was cleared
    assert {lock.username for lock in lockouts_active(actor=sam)} - {None} == {"sam", "bob"}
    assert [e.extra["reason"] for e in events("account.admin.refused")] == ["self"]
    assert "auth.lockout.lifted" not in actions()

    # and lifting another address's lockout names whom it cleared
    assert lockout_lift(actor=sam, ip_address="203.0.113.7") == 1
    (lifted,) = events("auth.lockout.lifted")
    assert lifted.extra["usernames"] == ["bob"]


@pytest.mark.parametrize("how", ["deactivated", "demoted"])
def test_a_lapsed_invitation_stays_lapsed_when_the_power_comes_back(how: str) -> None:
    # given mallory's invitation, lapsed when mallory lost the power
    mallory = grant_role(make_user(username="mallory"), Role.SECURITY_ADMIN)
    olivia = grant_role(make_user(username="olivia"), Role.SECURITY_ADMIN)
    invitation, token = invitation_create(
        actor=mallory, email="accomplice@bank.example", role=Role.SECURITY_ADMIN
    )
    lose_power(how, admin=mallory, by=olivia)

    # when the power is given back, then the link is used
    if how == "deactivated":
        user_reactivate(actor=olivia, user=User.objects.get(pk=mallory.pk))
    else:
        role_grant(actor=olivia, user=User.objects.get(pk=mallory.pk), role=Role.SECURITY_ADMIN)
    with pytest.raises(InvalidLink):
        invitation_accept(
            request=accept_request(), token=token, username="accomplice", password=PASSWORD
        )

    # then it was revoked for good with the change that took the power away
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    assert not User.objects.filter(username="accomplice").exists()
    taken = events("account.deactivated") + events("account.role.revoked")
    assert [e.extra["invitations_revoked"] for e in taken] == [1]


def test_permissions_come_from_the_code_not_from_the_role_groups_rows() -> None:
    # given a member, and the member role's rows given every permission (a loaddata)
    from django.contrib.auth.models import Group, Permission

    member = grant_role(make_user(), Role.MEMBER)
    Group.objects.get(name=Role.MEMBER).permissions.set(Permission.objects.all())

    # then the member holds nothing the code does not give the role
    fresh = User.objects.get(pk=member.pk)
    assert not fresh.has_perm("accounts.manage_users")
    assert not fresh.has_perm("audit.view_auditevent")
    assert fresh.get_all_permissions() == set()
