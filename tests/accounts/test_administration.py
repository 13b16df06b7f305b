"""Roles, invitations, first boot, deactivation, factor resets and lockouts."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_django import Settings

from accounts.models import BootstrapToken, Invitation, User
from accounts.roles import ROLE_PERMISSIONS, Role
from accounts.services import role_grant
from safechat.keyring.models import UserKeyPair
from tests.accounts.conftest import PASSWORD, actions, events
from tests.accounts.factories import grant_role, make_totp_device, make_user, sign_in_client

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "another long passphrase 42"


def test_the_migration_creates_every_role_with_its_documented_permissions() -> None:
    for role, names in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role.value)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert granted == set(names), role


def test_roles_give_their_permissions() -> None:
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    room_admin = grant_role(make_user(), Role.ROOM_ADMIN)
    member = grant_role(make_user(), Role.MEMBER)

    assert officer.has_perm("audit.view_auditevent")
    assert officer.is_staff
    assert not officer.has_perm("accounts.create_room")
    assert room_admin.has_perm("accounts.create_room")
    assert not room_admin.is_staff
    assert not member.has_perm("accounts.create_room")
    assert not member.has_perm("accounts.manage_users")


def test_nobody_changes_their_own_role_and_the_attempt_is_audited(
    admin_client: Client, security_admin: User
) -> None:
    response = admin_client.post(
        f"/accounts/admin/users/{security_admin.pk}/revoke-role/", {"role": "security_admin"}
    )

    assert response.status_code == 403
    assert security_admin.groups.filter(name="security_admin").exists()
    assert not events("account.role.revoked")
    assert not events("account.role.granted")
    refused = events("account.role.refused")
    assert len(refused) == 1
    assert refused[0].extra["reason"] == "self"


def test_a_security_admin_grants_a_role_to_someone_else(admin_client: Client, user: User) -> None:
    admin_client.post(f"/accounts/admin/users/{user.pk}/grant-role/", {"role": "room_admin"})

    assert user.groups.filter(name="room_admin").exists()
    assert events("account.role.granted")[0].extra == {
        "role": "room_admin",
        "rooms_in_violation": 0,
    }


def test_a_member_cannot_grant_roles_invite_or_deactivate(
    verified_client: Client, user: User
) -> None:
    other = make_user()
    before = actions()

    grant = verified_client.post(
        f"/accounts/admin/users/{other.pk}/grant-role/", {"role": "security_admin"}
    )
    deactivate = verified_client.post(f"/accounts/admin/users/{other.pk}/deactivate/")
    invite = verified_client.post(
        "/accounts/admin/users/", {"email": "x@bank.example", "role": "member"}
    )

    assert [grant.status_code, deactivate.status_code, invite.status_code] == [403, 403, 403]
    other.refresh_from_db()
    assert other.is_active
    assert not other.groups.exists()
    assert not Invitation.objects.exists()
    assert not mail.outbox
    new = actions()[len(before) :]
    assert set(new) == {"account.role.refused", "account.admin.refused", "access.refused"}


def test_an_invitation_creates_an_account_once(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given an invitation, mailed after commit
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/accounts/admin/users/", {"email": "New@Bank.example", "role": "room_admin"}
        )
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/invitation/[^/]+/)", str(mail.outbox[0].body))
    assert link is not None
    path = link.group(1)
    stored = Invitation.objects.get()
    assert path.split("/")[-2] not in stored.token_hash

    # when the invitee opens it and creates their account
    client = Client()
    assert client.get(path).status_code == 200
    created = client.post(
        path, {"username": "newbie", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    # then they have the role, and must enrol a factor before anything else
    assert created.headers["Location"] == "/accounts/enrol/"
    newbie = User.objects.get(username="newbie")
    assert newbie.email == "new@bank.example"
    assert newbie.has_perm("accounts.create_room")
    assert client.get("/accounts/").headers["Location"].startswith("/accounts/enrol/")

    # and the link does not work twice
    again = Client().post(
        path, {"username": "second", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert again.status_code == 404
    assert not User.objects.filter(username="second").exists()
    assert events("account.invitation.refused")[0].extra == {"reason": "used"}


def test_an_expired_invitation_is_refused(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/accounts/admin/users/", {"email": "late@bank.example", "role": "member"}
        )
    path = re.search(r"(/accounts/invitation/[^/]+/)", str(mail.outbox[0].body)).group(1)  # type: ignore[union-attr]
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = Client().get(path)

    assert response.status_code == 404
    assert "not valid" in response.content.decode()
    assert events("account.invitation.refused")[0].extra == {"reason": "expired"}


def test_a_weak_password_is_refused_on_invitation(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/accounts/admin/users/", {"email": "weak@bank.example", "role": "member"}
        )
    path = re.search(r"(/accounts/invitation/[^/]+/)", str(mail.outbox[0].body)).group(1)  # type: ignore[union-attr]

    response = Client().post(
        path, {"username": "weak", "new_password1": "password1234", "new_password2": "password1234"}
    )

    assert response.status_code == 400
    assert not User.objects.filter(username="weak").exists()
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.django_db
def test_the_bootstrap_url_creates_the_first_security_admin_once() -> None:
    # given a fresh install
    out = StringIO()
    call_command("bootstrap_admin", "--if-no-users", stdout=out)
    url = re.search(r"http://localhost:\d+(/accounts/bootstrap/[^/]+/)", out.getvalue())
    assert url is not None
    path = url.group(1)
    assert path.split("/")[-2] not in BootstrapToken.objects.get().token_hash

    # when the URL is used
    client = Client()
    form = {"username": "first", "email": "first@bank.example", "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD}  # fmt: skip
    response = client.post(path, form)

    # then the first security admin exists, must enrol next, and the URL is spent
    assert response.headers["Location"] == "/accounts/enrol/"
    first = User.objects.get(username="first")
    assert first.has_perm("accounts.manage_users")
    assert first.is_staff
    assert UserKeyPair.objects.filter(user=first).exists()
    assert Client().post(path, {**form, "username": "second"}).status_code == 404
    assert not User.objects.filter(username="second").exists()
    assert actions()[:3] == ["key.user.created", "auth.bootstrap.used", "account.created"]
    assert events("auth.bootstrap.refused")

    # and with a user present the command prints nothing special, or refuses
    quiet = StringIO()
    call_command("bootstrap_admin", "--if-no-users", stdout=quiet)
    assert quiet.getvalue() == ""


def test_an_expired_bootstrap_url_is_refused() -> None:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    path = re.search(r"(/accounts/bootstrap/[^/]+/)", out.getvalue()).group(1)  # type: ignore[union-attr]
    BootstrapToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert Client().get(path).status_code == 404
    assert not User.objects.filter(is_staff=True).exists()
    assert events("auth.bootstrap.refused")[0].extra == {"reason": "expired"}


def test_deactivation_ends_sessions_and_tokens(admin_client: Client, user: User) -> None:
    from accounts.services import api_token_create

    client = Client()
    sign_in_client(client, user, verified=True)
    token, _ = api_token_create(actor=user, name="ci", scope="read")

    admin_client.post(f"/accounts/admin/users/{user.pk}/deactivate/")

    user.refresh_from_db()
    token.refresh_from_db()
    assert not user.is_active
    assert token.revoked_at is not None
    assert client.get("/accounts/").status_code == 302
    assert events("account.deactivated")[0].extra == {
        "sessions_ended": 1,
        "tokens_revoked": 1,
        "rooms": 0,
        "room_keys_revoked": 0,
    }


def test_a_factor_reset_forces_enrolment_again(admin_client: Client, user: User) -> None:
    client = Client()
    sign_in_client(client, user, verified=True)

    admin_client.post(f"/accounts/admin/users/{user.pk}/reset-factors/")

    assert not TOTPDevice.objects.filter(user=user).exists()
    assert client.get("/accounts/").status_code == 302
    again = Client()
    again.post("/accounts/sign-in/", {"username": user.username, "password": PASSWORD})
    assert again.get("/accounts/").headers["Location"].startswith("/accounts/enrol/")
    assert events("factor.reset")[0].extra == {
        "devices": 1,
        "sessions_ended": 1,
        "tokens_revoked": 0,
    }


def test_a_security_admin_lifts_a_lockout_and_it_is_audited(
    admin_client: Client, user: User, settings: Settings
) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        Client().post(
            "/accounts/sign-in/", {"username": user.username, "password": "wrong wrong wrong"}
        )
    page = admin_client.get("/accounts/admin/users/")
    assert [lock.username for lock in page.context["lockouts"] if lock.username] == [user.username]

    admin_client.post("/accounts/admin/lockouts/lift/", {"username": user.username})
    admin_client.post("/accounts/admin/lockouts/lift/", {"ip_address": "127.0.0.1"})

    make_totp_device(user)
    answer = Client().post("/accounts/sign-in/", {"username": user.username, "password": PASSWORD})
    assert answer.status_code == 302
    assert [e.extra["username"] for e in events("auth.lockout.lifted")] == [user.username, None]


def test_a_member_cannot_lift_a_lockout(
    verified_client: Client, user: User, settings: Settings
) -> None:
    settings.AXES_FAILURE_LIMIT = 1
    Client().post("/accounts/sign-in/", {"username": "victim", "password": "wrong wrong wrong"})

    locked = AccessAttempt.objects.filter(username="victim").count()

    response = verified_client.post("/accounts/admin/lockouts/lift/", {"username": "victim"})

    assert response.status_code == 403
    assert locked
    assert AccessAttempt.objects.filter(username="victim").count() == locked
    assert not events("auth.lockout.lifted")
    assert [e.extra.get("operation") for e in events("account.admin.refused")] == ["lockout.lift"]


def test_the_django_admin_needs_staff_with_a_verified_second_factor(user: User) -> None:
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)
    unverified, verified, member = Client(), Client(), Client()
    sign_in_client(unverified, officer, verified=False)
    sign_in_client(verified, officer, verified=True)
    sign_in_client(member, user, verified=True)

    assert unverified.get("/admin/").status_code == 302
    assert verified.get("/admin/").status_code == 200
    assert member.get("/admin/").status_code in {302, 403}
    assert Client().get("/admin/login/").headers["Location"].startswith("/accounts/sign-in/")


def test_the_role_service_refuses_self_grant_even_when_called_directly(
    security_admin: User,
) -> None:
    with pytest.raises(PermissionDenied):
        role_grant(actor=security_admin, user=security_admin, role=Role.COMPLIANCE_OFFICER)
    assert not security_admin.groups.filter(name="compliance_officer").exists()


def _page_constants(response: Any) -> bytes:
    """The body, without what differs between any two pages: the request id the error
    page shows for support, and the (masked) CSRF token of its sign-out form."""
    body = bytes(response.content).replace(response["X-Request-ID"].encode(), b"")
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", body)


@pytest.mark.parametrize(
    ("action", "refusal"),
    [
        ("deactivate", "account.admin.refused"),
        ("reactivate", "account.admin.refused"),
        ("reset-factors", "account.admin.refused"),
        ("end-sessions", "account.admin.refused"),
        ("reset-password", "account.admin.refused"),
        ("grant-role", "account.role.refused"),
    ],
)
def test_someone_without_the_right_gets_the_same_answer_whether_the_id_exists_or_not(
    verified_client: Client, action: str, refusal: str
) -> None:
    # given a real account and an id that names none
    other = make_user()
    missing = other.pk + 1000

    # when a plain member tries an administrator's action on each
    known = verified_client.post(f"/accounts/admin/users/{other.pk}/{action}/", {"role": "member"})
    unknown = verified_client.post(f"/accounts/admin/users/{missing}/{action}/", {"role": "member"})

    # then both answers are the same 403 (but for each request's own id), both audited,
    # and nothing changed
    assert (known.status_code, unknown.status_code) == (403, 403)
    assert _page_constants(known) == _page_constants(unknown)
    refused = events(refusal)
    assert [e.extra["user_id"] for e in refused] == [other.pk, missing]
    assert {e.extra["reason"] for e in refused} == {"permission"}
    other.refresh_from_db()
    assert other.is_active
    assert not other.groups.exists()
    assert not mail.outbox


def test_a_security_admin_gets_a_404_for_an_unknown_account(admin_client: Client) -> None:
    before = actions()

    response = admin_client.post("/accounts/admin/users/999999/deactivate/")

    assert response.status_code == 404
    assert actions() == before


def test_a_security_admin_reactivates_an_account_without_restoring_old_access(
    admin_client: Client, security_admin: User, user: User
) -> None:
    # given a deactivated account (its sessions and tokens ended)
    from accounts.models import ApiToken
    from accounts.services import api_token_create, user_deactivate

    token, _ = api_token_create(actor=user, name="ci", scope="read")
    user_deactivate(actor=security_admin, user=user)

    # when a security admin reactivates it
    response = admin_client.post(f"/accounts/admin/users/{user.pk}/reactivate/")

    # then it is active, audited once, and the old token stays revoked
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_active
    reactivated = events("account.reactivated")
    assert [(e.actor_id, e.target_id) for e in reactivated] == [(security_admin.pk, str(user.pk))]
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_reactivation_by_someone_without_the_right_is_refused_audited_and_changes_nothing(
    user: User,
) -> None:
    from accounts.services import user_reactivate

    gone = make_user(is_active=False)
    room_admin = grant_role(make_user(), Role.ROOM_ADMIN)

    with pytest.raises(PermissionDenied):
        user_reactivate(actor=room_admin, user=gone)

    gone.refresh_from_db()
    assert not gone.is_active
    assert not events("account.reactivated")
    refused = events("account.admin.refused")
    assert [(e.extra["operation"], e.extra["reason"]) for e in refused] == [
        ("account.reactivate", "permission")
    ]


@pytest.mark.parametrize(
    ("held", "granted"),
    [
        (Role.SECURITY_ADMIN, Role.COMPLIANCE_OFFICER),
        (Role.COMPLIANCE_OFFICER, Role.SECURITY_ADMIN),
    ],
)
def test_one_person_is_never_both_security_admin_and_compliance_officer(
    security_admin: User, held: Role, granted: Role
) -> None:
    # given someone who holds one of the two duties
    bob = grant_role(make_user(username="bob"), held)

    # when a security admin grants them the other one
    with pytest.raises(PermissionDenied):
        role_grant(actor=security_admin, user=bob, role=granted)

    # then bob holds one duty only, and the refusal is on the record
    assert set(bob.groups.values_list("name", flat=True)) == {held.value}
    (refusal,) = events("account.role.refused")
    assert refusal.extra["reason"] == "incompatible roles"
    assert refusal.target_id == str(bob.pk)
    assert "account.role.granted" not in actions()


def test_the_only_security_admin_stays_whoever_tries() -> None:
    # given the only active security admin, and a room admin
    sam = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    rita = grant_role(make_user(username="rita"), Role.ROOM_ADMIN)
    from accounts.services import role_revoke, user_deactivate

    # when they deactivate or demote sam, or sam does it to themselves
    attempts: list[Callable[[], object]] = [
        lambda: user_deactivate(actor=sam, user=sam),
        lambda: role_revoke(actor=sam, user=sam, role=Role.SECURITY_ADMIN),
        lambda: user_deactivate(actor=rita, user=sam),
        lambda: role_revoke(actor=rita, user=sam, role=Role.SECURITY_ADMIN),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()

    # then each is refused, on the record, and sam is still an active security admin
    sam.refresh_from_db()
    assert sam.is_active
    assert sam.groups.filter(name=Role.SECURITY_ADMIN).exists()
    reasons = [e.extra["reason"] for e in events("account.admin.refused")]
    reasons += [e.extra["reason"] for e in events("account.role.refused")]
    assert sorted(reasons) == ["permission", "permission", "self", "self"]
    assert "account.deactivated" not in actions()
    assert "account.role.revoked" not in actions()


def test_the_last_security_admin_check_counts_active_holders_of_the_role() -> None:
    # given the only active security admin (a second one deactivated)
    from accounts.services._common import ensure_not_last_security_admin

    sam = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    grant_role(make_user(username="sue", is_active=False), Role.SECURITY_ADMIN)

    # when a change would take sam away, then it is refused as the last security admin
    with pytest.raises(PermissionDenied) as refused:
        ensure_not_last_security_admin(actor=sam, user=sam, operation="account.deactivate")
    assert refused.value.reason == "last security admin"  # type: ignore[attr-defined]

    # and with another active one it is not
    grant_role(make_user(username="sid"), Role.SECURITY_ADMIN)
    ensure_not_last_security_admin(actor=sam, user=sam, operation="account.deactivate")
