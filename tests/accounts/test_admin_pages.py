"""The Django admin per role: what each sees, and that it changes nothing except through
the audited services (refusals audited, nothing changed)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.test import Client
from guardian.utils import get_anonymous_user
from pytest_django import Settings

from accounts.models import User
from accounts.roles import ROLE_PERMISSIONS, Role, roles_sync
from audit.models import AuditEvent
from rooms.models import Membership
from tests.accounts.conftest import actions, events
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


@pytest.fixture
def security_admin() -> User:
    return grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)


@pytest.fixture
def officer() -> User:
    return grant_role(make_user(username="olivia"), Role.COMPLIANCE_OFFICER)


@pytest.fixture
def outsider() -> User:
    """A staff account given every permission outside the roles: directly, and through a
    group that is not a role (what a Django shell or an old admin page could do)."""
    root = make_user(username="root", is_staff=True)
    everything = list(Permission.objects.all())
    root.user_permissions.set(everything)
    helpdesk = Group.objects.create(name="helpdesk")
    helpdesk.permissions.set(everything)
    root.groups.add(helpdesk)
    return User.objects.get(pk=root.pk)


def index_links(client: Client) -> set[str]:
    page = client.get("/admin/")
    assert page.status_code == 200
    return {
        model["admin_url"]
        for app in page.context["app_list"]
        for model in app["models"]
        if model.get("admin_url")
    }


def test_the_security_admin_index_shows_people_rooms_and_memberships(
    security_admin: User,
) -> None:
    links = index_links(client_for(security_admin))

    assert {
        "/admin/accounts/user/", "/admin/accounts/usersession/", "/admin/accounts/apitoken/",
        "/admin/rooms/room/", "/admin/rooms/membership/", "/admin/auth/group/",
        "/admin/rooms/informationbarrier/",
    } <= links  # fmt: skip
    assert not any("otp" in link for link in links)


def test_the_compliance_officer_index_shows_the_audit_log_and_what_it_names(
    officer: User,
) -> None:
    links = index_links(client_for(officer))

    assert {
        "/admin/audit/auditevent/", "/admin/accounts/user/", "/admin/rooms/room/",
        "/admin/rooms/membership/",
    } <= links  # fmt: skip
    assert "/admin/auth/group/" not in links
    assert "/admin/rooms/informationbarrier/" not in links


def test_a_security_admin_sees_no_factor_devices(security_admin: User) -> None:
    links = index_links(client_for(security_admin))

    assert not any("otp" in link or "webauthn" in link for link in links)


def test_a_member_has_no_admin(user: User) -> None:
    assert client_for(user).get("/admin/").status_code in {302, 403}


def test_a_room_page_lists_its_members_by_name(security_admin: User) -> None:
    alice, bob = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=alice, members=(bob,), name="Treasury")

    page = client_for(security_admin).get(f"/admin/rooms/room/{room.pk}/change/")

    body = page.content.decode()
    assert page.status_code == 200
    assert ">alice<" in body
    assert ">bob<" in body
    assert f"/admin/accounts/user/{bob.pk}/change/" in body


def test_memberships_read_as_names_not_ids(officer: User) -> None:
    alice = make_user(username="alice")
    room = make_room(owner=alice, name="Treasury")

    body = client_for(officer).get("/admin/rooms/membership/").content.decode()

    assert "Treasury" in body
    assert "alice" in body
    assert f"room {room.pk}" not in body


def test_the_anonymous_user_is_hidden_from_users(security_admin: User) -> None:
    anonymous = get_anonymous_user()

    page = client_for(security_admin).get("/admin/accounts/user/")
    one = client_for(security_admin).get(f"/admin/accounts/user/{anonymous.pk}/change/")

    assert anonymous.username not in page.content.decode()
    assert one.status_code == 302  # "no such user": back to the list


def test_a_security_admin_reactivates_from_the_admin_and_it_is_audited(
    security_admin: User,
) -> None:
    gone = make_user(username="gone", is_active=False)

    response = client_for(security_admin).post(
        "/admin/accounts/user/", {"action": "reactivate", "_selected_action": [gone.pk]}
    )

    assert response.status_code == 302
    gone.refresh_from_db()
    assert gone.is_active
    assert [e.target_id for e in events("account.reactivated")] == [str(gone.pk)]


def test_an_officer_is_offered_no_account_actions_and_changes_nothing(officer: User) -> None:
    other = make_user(username="other")
    client = client_for(officer)
    before = actions()

    page = client.get("/admin/accounts/user/")
    posted = client.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [other.pk]}
    )

    assert page.status_code == 200
    assert page.context["action_form"] is None
    assert posted.status_code in {200, 302}
    other.refresh_from_db()
    assert other.is_active
    assert not events("account.deactivated")
    assert [a for a in actions()[len(before) :] if a != "audit.searched"] == []


def test_permissions_given_outside_the_roles_give_no_power(outsider: User) -> None:
    # given a staff account holding every permission, but no role
    target = make_user(username="target")

    # when it opens the admin and deactivates someone
    client = client_for(outsider)
    index = client.get("/admin/")
    posted = client.post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [target.pk]}
    )

    # then it holds nothing: no model in the admin, no action, nothing changed
    assert not outsider.has_perm("accounts.manage_users")
    assert not outsider.has_perm("audit.view_auditevent")
    assert index.status_code == 200
    assert index.context["app_list"] == []
    assert posted.status_code == 403
    target.refresh_from_db()
    assert target.is_active
    assert not events("account.deactivated")


def test_the_next_migrate_takes_permissions_away_from_groups_that_are_not_roles(
    outsider: User,
) -> None:
    roles_sync()

    assert not Group.objects.get(name="helpdesk").permissions.exists()


def test_no_account_can_be_made_a_superuser() -> None:
    user = make_user()

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_superuser=True)

    assert not User.objects.filter(is_superuser=True).exists()


def test_the_admin_refuses_an_administrator_acting_on_themselves_audited(
    security_admin: User,
) -> None:
    client_for(security_admin).post(
        "/admin/accounts/user/", {"action": "deactivate", "_selected_action": [security_admin.pk]}
    )

    security_admin.refresh_from_db()
    assert security_admin.is_active
    assert not events("account.deactivated")
    assert [e.extra["reason"] for e in events("account.admin.refused")] == ["self"]


@pytest.mark.parametrize("role", list(Role))
def test_role_groups_are_read_only_in_the_admin_even_for_a_security_admin(
    security_admin: User, role: Role
) -> None:
    group = Group.objects.get(name=role.value)
    before = set(group.permissions.values_list("pk", flat=True))
    reset = Permission.objects.get(codename="manage_users")
    client = client_for(security_admin)

    page = client.get(f"/admin/auth/group/{group.pk}/change/")
    posted = client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": role.value, "permissions": [reset.pk], "members": []},
    )

    assert page.status_code == 200  # view only
    assert posted.status_code == 403
    assert set(group.permissions.values_list("pk", flat=True)) == before
    assert not AuditEvent.objects.filter(action__startswith="account.role.").exists()


def test_a_permission_attached_to_a_role_by_other_means_is_taken_away_again() -> None:
    member = Group.objects.get(name=Role.MEMBER.value)
    member.permissions.add(Permission.objects.get(codename="manage_users"))

    roles_sync()

    for role, names in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role.value)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert granted == set(names), role


def test_the_user_manager_creates_no_superuser_whoever_asks() -> None:
    # (the createsuperuser command is refused and audited: tests/accounts/test_commands.py)
    before = User.objects.count()

    with pytest.raises(PermissionDenied, match="bootstrap_admin"):
        User.objects.create_superuser(username="root", email="root@bank.example")

    assert User.objects.count() == before
    assert not User.objects.filter(is_superuser=True).exists()


def test_the_audit_browser_names_and_links_targets(officer: User) -> None:
    alice = make_user(username="alice")
    room = make_room(owner=alice, name="Treasury")
    client = client_for(officer)

    body = client.get("/admin/audit/auditevent/").content.decode()

    assert f'href="/admin/rooms/room/{room.pk}/change/"' in body
    assert "Treasury" in body
    assert f"rooms.room {room.pk}" not in body


def test_a_message_event_links_to_its_room_and_a_barrier_event_names_its_groups(
    officer: User,
) -> None:
    # given a message posted in a room, and a barrier between two named groups
    from rooms.services import barrier_create, group_create, message_post

    alice = make_user(username="alice")
    room = make_room(owner=alice, name="Treasury")
    message_post(sender=alice, room=room, text="the message text stays out of the log")
    admin = User.objects.get(pk=grant_role(make_user(), Role.SECURITY_ADMIN).pk)
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    barrier_create(actor=admin, group_a=deals, group_b=research)

    # when the officer opens the audit browser on each kind of event
    posted = client_for(officer).get("/admin/audit/auditevent/?action=message.posted")
    created = client_for(officer).get("/admin/audit/auditevent/?action=barrier.created")

    # then the message is named by its room and sender and links to the room's page,
    # never showing its text; the barrier is named by its two groups
    body = posted.content.decode()
    assert "(room Treasury, sender alice)" in body
    assert f'href="/admin/rooms/room/{room.pk}/change/"' in body
    assert "stays out of the log" not in body
    assert "(between deals and research)" in created.content.decode()
    assert "group_a" not in created.content.decode()


def test_a_lifted_barrier_is_still_named_by_its_groups_in_the_audit_browser(
    officer: User,
) -> None:
    from rooms.services import barrier_create, barrier_delete, group_create

    admin = User.objects.get(pk=grant_role(make_user(), Role.SECURITY_ADMIN).pk)
    deals = group_create(actor=admin, name="deals")
    research = group_create(actor=admin, name="research")
    barrier, _ = barrier_create(actor=admin, group_a=deals, group_b=research)
    barrier_delete(actor=admin, barrier=barrier)

    page = client_for(officer).get("/admin/audit/auditevent/?action=barrier.deleted")

    assert "(no longer exists; groups deals and research)" in page.content.decode()


def test_the_audit_browser_links_a_person_who_acted_to_their_page(officer: User) -> None:
    # given an event by a person (the room's creation) and the officer's own search
    alice = make_user(username="alice")
    make_room(owner=alice, name="Treasury")
    client = client_for(officer)
    client.get("/admin/audit/auditevent/?q=nobody")  # the officer's search, recorded

    # when the officer opens the audit browser
    body = client.get("/admin/audit/auditevent/").content.decode()

    # then the acting person's name links to their page, as targets do
    assert f'<a href="/admin/accounts/user/{alice.pk}/change/">alice</a>' in body
    assert f'<a href="/admin/accounts/user/{officer.pk}/change/">olivia</a>' in body


def test_the_users_page_names_every_group_filter_choice(security_admin: User) -> None:
    # given people in a role and in none
    make_user(username="nobody-in-particular")

    # when the security admin opens the users page
    page = client_for(security_admin).get("/admin/accounts/user/")

    # then every choice of the group filter has a name, "in no group" included
    spec = next(s for s in page.context["cl"].filter_specs if s.title == "group or role")
    names = [str(choice["display"]) for choice in spec.choices(page.context["cl"])]
    assert "in no group" in names
    assert Role.SECURITY_ADMIN.label in names  # a role by its label, never its value
    assert not set(names) & {role.value for role in Role if role.value != role.label}
    assert all(name.strip() and name.strip() != "-" for name in names)


def test_the_invitations_role_filter_and_column_name_roles_by_their_labels(
    security_admin: User,
) -> None:
    # given an invitation as room admin
    from accounts.models import Invitation

    Invitation.objects.create(
        email="new@bank.example",
        role=Role.ROOM_ADMIN.value,
        invited_by=security_admin,
        token_hash="x" * 64,
        expires_at="2099-01-01T00:00:00Z",
    )

    # when the security admin opens the invitations
    page = client_for(security_admin).get("/admin/accounts/invitation/")

    # then the role filter offers labels (with the values as its parameters) and the
    # list names the invitation's role by its label
    spec = next(s for s in page.context["cl"].filter_specs if s.title == "role")
    shown = {str(c["display"]) for c in spec.choices(page.context["cl"])}
    assert {role.label for role in Role} <= shown
    assert not shown & {role.value for role in Role if role.value != role.label}
    body = page.content.decode()
    assert f'<td class="field-role_shown">{Role.ROOM_ADMIN.label}</td>' in body
    filtered = client_for(security_admin).get(
        f"/admin/accounts/invitation/?role={Role.ROOM_ADMIN.value}"
    )
    assert [i.email for i in filtered.context["cl"].result_list] == ["new@bank.example"]


def test_the_barrier_pages_name_the_groups_never_their_ids(security_admin: User) -> None:
    # given a barrier between two named groups
    from rooms.services import barrier_create, group_create

    deals = group_create(actor=security_admin, name="deals")
    research = group_create(actor=security_admin, name="research")
    barrier, _ = barrier_create(actor=security_admin, group_a=deals, group_b=research)
    client = client_for(security_admin)

    # when the security admin lists barriers and opens the form to add one
    listing = client.get("/admin/rooms/informationbarrier/").content.decode()
    adding = client.get("/admin/rooms/informationbarrier/add/").content.decode()

    # then the barrier is named by its groups, and the form's sides by what they are
    assert str(barrier) == "barrier between “deals” and “research”"
    assert '<td class="field-one_side">deals</td>' in listing
    assert '<td class="field-other_side">research</td>' in listing
    assert f"groups {deals.pk} and {research.pk}" not in listing
    assert "One side (a group)" in adding
    assert "The other side (a group)" in adding
    assert "Group a" not in adding
    assert "Group b" not in adding


def test_the_audit_browser_shows_and_filters_the_channel_and_token(officer: User) -> None:
    # given events from two channels: a room made by a service call (no request: the
    # command channel) and a search in the admin
    make_room(owner=make_user(), name="Treasury")
    client = client_for(officer)
    client.get("/admin/audit/auditevent/?q=nobody")
    assert AuditEvent.objects.exclude(channel="admin").exists()

    # when the officer filters by the admin channel
    page = client.get("/admin/audit/auditevent/?channel__exact=admin")

    # then only that channel's events are listed, with the channel and token columns
    assert page.status_code == 200
    listed = list(page.context["cl"].result_list)
    assert listed
    assert {e.channel for e in listed} == {"admin"}
    assert any(s.title == "channel" for s in page.context["cl"].filter_specs)
    body = page.content.decode()
    assert "column-channel" in body
    assert "column-token_id" in body
    detail = client.get(f"/admin/audit/auditevent/{listed[0].pk}/change/").content.decode()
    assert "field-channel" in detail
    assert "field-token_id" in detail


def test_the_target_type_filter_never_offers_a_blank_entry(officer: User) -> None:
    client = client_for(officer)
    client.get("/admin/audit/auditevent/?q=nobody")  # records an audit.searched (no target)

    page = client.get("/admin/audit/auditevent/")

    spec = next(s for s in page.context["cl"].filter_specs if s.title == "target type")
    titles = [choice["display"] for choice in spec.choices(page.context["cl"])]
    assert all(str(title).strip() for title in titles)
    assert "no target" in titles
    blank = client.get("/admin/audit/auditevent/?target_type=-")
    assert blank.status_code == 200
    assert {e.target_type for e in blank.context["cl"].result_list} == {""}


def test_a_target_without_a_name_of_its_own_is_named_by_its_room_and_person() -> None:
    from audit.admin import _target_name
    from rooms.models import Membership

    alice = make_user(username="alice")
    room = make_room(owner=alice, name="Treasury")

    name = _target_name(Membership.objects.get(room=room, user=alice))

    assert name.endswith("(room Treasury, user alice)")
    assert f"room {room.pk}" not in name


# --- Each power of a security admin from the admin, without typing a URL -----------
def test_a_security_admin_revokes_a_leaked_token_from_the_admin(security_admin: User) -> None:
    from accounts.models import ApiToken
    from accounts.services import api_token_create

    # given a person's token, reported leaked, and a security admin (accounts.manage_tokens)
    alice = make_user(username="alice")
    token, _secret = api_token_create(actor=alice, name="ci", scope="admin", days=30)
    sam = security_admin
    client = client_for(sam)

    # when they use the tokens page's revoke action on it
    page = client.get("/admin/accounts/apitoken/")
    assert "revoke" in page.context["action_form"].fields["action"].choices[1]
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    # then it is revoked through the service, on the record with who revoked it
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    (revoked,) = events("token.revoked")
    assert (revoked.actor_id, revoked.target_id, revoked.channel) == (
        sam.pk,
        str(token.pk),
        "admin",
    )


def test_a_compliance_officer_is_offered_no_token_revocation_and_revokes_nothing(
    officer: User,
) -> None:
    from accounts.models import ApiToken
    from accounts.services import api_token_create

    # given a token and a compliance officer in the admin
    token, _secret = api_token_create(actor=make_user(), name="ci", scope="read", days=30)
    client = client_for(officer)

    # when they post the revoke action anyway
    page = client.get("/admin/accounts/apitoken/")
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})

    # then nothing was offered nor done
    assert page.context["action_form"] is None
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert "token.revoked" not in actions()


def test_a_security_admin_resets_a_password_from_the_admin_users_page(security_admin: User) -> None:
    # given a person and a security admin on the admin's users page
    alice = make_user(username="alice")
    sam = security_admin
    client = client_for(sam)
    page = client.get("/admin/accounts/user/")

    # when they use the reset-password action (roles and lockouts: linked to their page)
    offered = [name for name, _label in page.context["action_form"].fields["action"].choices]
    client.post(
        "/admin/accounts/user/", {"action": "reset_password", "_selected_action": [alice.pk]}
    )

    # then the password is void, a link is on its way, and it is on the record
    assert "reset_password" in offered
    assert b"/accounts/admin/users/" in page.content
    alice.refresh_from_db()
    assert not alice.has_usable_password()
    (reset,) = events("auth.password.reset.requested")
    assert (reset.actor_id, reset.extra["by"]) == (sam.pk, "admin")


def test_a_persons_admin_page_links_their_room_memberships(security_admin: User) -> None:
    # given a person in a room
    alice = make_user(username="alice")
    make_room(owner=alice, name="Rates desk")

    # when a security admin opens their page, then the link filtered by them
    page = client_for(security_admin).get(f"/admin/accounts/user/{alice.pk}/change/")
    listing = client_for(security_admin).get(f"/admin/rooms/membership/?user__id__exact={alice.pk}")

    # then the page links their memberships, and the filtered list shows just theirs
    assert page.status_code == 200
    assert f"/admin/rooms/membership/?user__id__exact={alice.pk}".encode() in page.content
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list.values_list("user_id", flat=True)) == [alice.pk]


def test_reading_one_audit_event_in_the_admin_is_on_the_record(officer: User) -> None:
    from accounts.services import api_token_create

    # given an event about a person, and a compliance officer
    api_token_create(actor=make_user(username="alice"), name="ci", scope="read", days=5)
    event = AuditEvent.objects.filter(action="token.created").latest("seq")
    olivia = officer
    client = client_for(olivia)

    # when the officer opens the event's page directly (no list, no search)
    page = client.get(f"/admin/audit/auditevent/{event.pk}/change/")

    # then the reading is recorded, naming the event, as a search of the log is
    assert page.status_code == 200
    (read,) = events("audit.searched")
    assert (read.actor_id, read.extra["filters"]) == (olivia.pk, [["seq", str(event.pk)]])


@pytest.mark.parametrize(
    ("url", "action", "selected"),
    [
        ("/admin/accounts/user/", "deactivate", "x"),
        ("/admin/accounts/user/", "deactivate", "9" * 25),
        ("/admin/rooms/membership/", "remove_members", "9" * 25),
        ("/admin/accounts/apitoken/", "revoke", "-"),
    ],
)
def test_an_admin_action_on_a_selection_no_row_can_have_is_a_clear_400(
    security_admin: User, url: str, action: str, selected: str
) -> None:
    before = actions()
    client = Client(raise_request_exception=False)
    sign_in_client(client, security_admin, verified=True)

    answer = client.post(url, {"action": action, "_selected_action": [selected]})

    assert answer.status_code == 400
    assert actions() == before


def test_removing_members_in_bulk_stops_at_the_rate_limit_and_says_so(
    security_admin: User, settings: Settings
) -> None:
    # given a security admin who owns a room of three members, and a budget of two changes
    members = tuple(make_user() for _ in range(3))
    room = make_room(owner=security_admin, members=members)
    settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT = (2, 600)
    ids = list(Membership.objects.filter(room=room, user__in=members).values_list("pk", flat=True))

    # when all three are removed with the admin's bulk action
    answer = client_for(security_admin).post(
        "/admin/rooms/membership/",
        {"action": "remove_members", "_selected_action": ids},
        follow=True,
    )

    # then two went, each on the record; the third stayed, and the page says why
    assert answer.status_code == 200
    assert Membership.objects.filter(room=room, user__in=members).count() == 1
    assert len(events("room.member.removed")) == 2
    shown = [str(m) for m in answer.context["messages"]]
    assert any("try again" in m for m in shown)
    assert any(m.startswith("2 member(s) removed") for m in shown)
