"""Groups that information barriers separate: created through ``group_create`` (audited),
their members changed through ``group_members_set`` / ``user_groups_change`` (audited),
never a role (granted by the role services) and never one's own groups."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from guardian.utils import get_anonymous_user

from accounts.models import User
from accounts.roles import Role
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.services import group_create, group_members_set, user_groups_change
from safechat.actions import Refused
from tests.accounts.factories import grant_role, make_user, sign_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin() -> User:
    return grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_creating_a_group_in_the_admin_goes_through_the_audited_service(admin: User) -> None:
    # given a security admin in the admin, and a person to put in the new group
    analyst = make_user(username="ann")

    # when they add a group with a member
    answer = client_for(admin).post(
        "/admin/auth/group/add/", {"name": "Research", "members": [analyst.pk]}
    )

    # then the group exists with its member, its creation and the member's joining audited
    # from the admin
    assert answer.status_code == 302
    group = Group.objects.get(name="Research")
    assert list(group.user_set.values_list("pk", flat=True)) == [analyst.pk]
    created = AuditEvent.objects.get(action=AuditAction.GROUP_CREATED)
    assert (created.target_id, created.actor_id) == (str(group.pk), admin.pk)
    assert created.channel == "admin"
    assert created.extra == {"name": "Research"}
    joined = AuditEvent.objects.get(action=AuditAction.ACCOUNT_ROLE_GRANTED)
    assert (joined.target_id, joined.extra["group"]) == (str(analyst.pk), "Research")


def test_only_a_security_admin_creates_a_group(admin: User) -> None:
    # given a compliance officer
    officer = grant_role(make_user(username="olivia"), Role.COMPLIANCE_OFFICER)
    groups_before = Group.objects.count()

    # when they ask the service for a group
    with pytest.raises(Refused):
        group_create(actor=officer, name="Research")

    # then no group exists, and the refusal is on the record
    assert Group.objects.count() == groups_before
    assert not AuditEvent.objects.filter(action=AuditAction.GROUP_CREATED).exists()
    refused = AuditEvent.objects.get(action=AuditAction.ROOM_ACCESS_DENIED)
    assert (refused.actor_id, refused.extra["reason"]) == (officer.pk, "barrier management")


def test_the_group_page_names_each_person_by_name_username_and_email(admin: User) -> None:
    # given a group, and two people called "Ada Admin", one of them @eve
    group = group_create(actor=admin, name="Research")
    make_user(username="ada", first_name="Ada", last_name="Admin", email="ada@bank.example")
    make_user(username="eve", first_name="Ada", last_name="Admin", email="eve@bank.example")
    make_user(username="nameless", email="n@bank.example")

    # when the security admin opens the group's page
    page = client_for(admin).get(f"/admin/auth/group/{group.pk}/change/").content.decode()

    # then the people to pick are told apart by username and e-mail
    assert ">Ada Admin (@ada, ada@bank.example)</option>" in page
    assert ">Ada Admin (@eve, eve@bank.example)</option>" in page
    assert ">@nameless (n@bank.example)</option>" in page


@pytest.mark.parametrize("joining", [True, False])
def test_a_security_admin_cannot_change_their_own_groups_on_the_group_page(
    admin: User, joining: bool
) -> None:
    # given a group the admin is in (or not), with someone else in it
    group = Group.objects.create(name="Research")
    other = make_user(username="ann")
    group.user_set.add(other, *([] if joining else [admin]))
    seq = last_seq()

    # when the admin saves the page joining it (or leaving it)
    members = [other.pk, admin.pk] if joining else [other.pk]
    answer = client_for(admin).post(f"/admin/auth/group/{group.pk}/change/", {"members": members})

    # then the page refuses it, and nobody's groups changed
    assert answer.status_code == 200
    assert "Nobody changes their own groups" in answer.content.decode()
    expected = {other.pk} if joining else {other.pk, admin.pk}
    assert set(group.user_set.values_list("pk", flat=True)) == expected
    assert not AuditEvent.objects.filter(
        seq__gt=seq, action__in=[AuditAction.ACCOUNT_ROLE_GRANTED, AuditAction.ACCOUNT_ROLE_REVOKED]
    ).exists()


def _own_groups_through_group_members_set(admin: User, group: Group) -> object:
    return group_members_set(actor=admin, group=group, add=[admin])


def _own_groups_through_user_groups_change(admin: User, group: Group) -> object:
    return user_groups_change(actor=admin, user=admin, add=[group])


@pytest.mark.parametrize(
    "change", [_own_groups_through_group_members_set, _own_groups_through_user_groups_change]
)
def test_no_group_service_changes_the_actors_own_groups(
    admin: User, change: Callable[[User, Group], object]
) -> None:
    # given a barrier-free group the admin is not in
    group = Group.objects.create(name="Research")
    seq = last_seq()

    # when the admin puts themselves in it through a service
    with pytest.raises(Refused, match="their own groups"):
        change(admin, group)

    # then they are not in it, and the only event is the refusal
    assert not group.user_set.exists()
    recorded = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.action, e.extra["reason"], e.target_id) for e in recorded] == [
        (AuditAction.ACCOUNT_ROLE_REFUSED, "self", str(admin.pk))
    ]


@pytest.mark.parametrize("role", list(Role))
def test_group_services_never_grant_a_role(admin: User, role: Role) -> None:
    # given a person without the role
    person = make_user(username="ann")
    group = Group.objects.get(name=role.value)
    seq = last_seq()

    # when a security admin puts them in the role's group through either group service
    with pytest.raises(Refused, match="Roles are granted"):
        group_members_set(actor=admin, group=group, add=[person])
    with pytest.raises(Refused, match="Roles are granted"):
        user_groups_change(actor=admin, user=person, add=[group])

    # then they do not hold it, and only the two refusals are on the record
    assert not person.groups.exists()
    recorded = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.action, e.extra["reason"]) for e in recorded] == [
        (AuditAction.ACCOUNT_ROLE_REFUSED, "role")
    ] * 2


def test_group_services_never_put_the_system_account_in_a_group(admin: User) -> None:
    # given a group, and django-guardian's internal anonymous user row
    group = Group.objects.create(name="Research")
    system = get_anonymous_user()
    seq = last_seq()

    # when a security admin hands that row to either group service
    with pytest.raises(Refused, match="no such person"):
        group_members_set(actor=admin, group=group, add=[system])
    with pytest.raises(Refused, match="no such person"):
        user_groups_change(actor=admin, user=system, add=[group])

    # then it is in no group, and only the two refusals are on the record
    assert not Group.objects.filter(user=system).exists()
    recorded = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.action, e.extra["reason"]) for e in recorded] == [
        (AuditAction.ACCOUNT_ROLE_REFUSED, "not a person")
    ] * 2
