"""Local passwords turned off where an identity provider signs people in, except for the
break-glass accounts: password and second factor, every use audited and alerted."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from pytest_django import Settings

from accounts.models import User, UserSession
from accounts.password_policy import LocalPasswordPolicyError, local_password_policy_check
from accounts.roles import Role
from accounts.services.auth import GENERIC_FAILURE
from tests.accounts.conftest import PASSWORD, events
from tests.accounts.factories import grant_role, make_totp_device, make_user, totp_code


def sign_in(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/sign-in/", {"username": username, "password": password})


@pytest.fixture
def passwords_off(settings: Settings) -> None:
    settings.SAFECHAT_LOCAL_PASSWORDS = False
    settings.SAFECHAT_BREAK_GLASS_USERNAMES = ("Glass",)


@pytest.mark.django_db
@pytest.mark.usefixtures("passwords_off")
def test_with_local_passwords_off_a_right_password_signs_nobody_else_in(user: User) -> None:
    client = Client()

    response = sign_in(client, user.username)

    # then the answer is a wrong password's (400), and nothing was started
    assert response.status_code == 400
    assert GENERIC_FAILURE in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not UserSession.objects.exists()
    [failed] = events("auth.login.failed")
    assert failed.extra["reason"] == "local_passwords_disabled"
    assert not events("auth.password.verified")
    assert not events("auth.break_glass.used")


@pytest.mark.django_db
@pytest.mark.usefixtures("passwords_off")
def test_the_break_glass_account_signs_in_with_password_and_factor_audited_and_alerted(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given the break-glass account (a security admin with a factor) and another admin
    glass = grant_role(make_user(username="glass"), Role.SECURITY_ADMIN)
    device = make_totp_device(glass)
    grant_role(make_user(username="other-admin", email="other@bank.example"), Role.SECURITY_ADMIN)
    client = Client()

    # when it gives its password
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_in(client, "GLASS")

    # then the second factor is still due, the use recorded and the admins alerted
    assert response["Location"].startswith("/accounts/second-factor/")
    assert client.get("/accounts/factors/").status_code == 302
    [used] = events("auth.break_glass.used")
    assert used.actor_id == glass.pk
    assert used.extra == {"step": "password"}
    assert len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {"glass@bank.example", "other@bank.example"}
    assert "break-glass" in mail.outbox[0].subject
    # and with the factor it is in
    client.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": totp_code(device)}
    )
    assert client.get("/accounts/factors/").status_code == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("passwords_off")
def test_a_wrong_break_glass_password_is_an_ordinary_failure_and_no_use() -> None:
    make_user(username="glass")

    response = sign_in(Client(), "glass", "not the password")

    assert GENERIC_FAILURE in response.content.decode()
    assert not events("auth.break_glass.used")
    assert not mail.outbox
    assert events("auth.login.failed")[-1].extra.get("reason") is None


@pytest.mark.django_db
@pytest.mark.usefixtures("passwords_off")
def test_a_reset_link_is_sent_to_nobody_but_the_break_glass_account(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    glass = make_user(username="glass")

    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/accounts/password-reset/", {"email": user.email})
        Client().post("/accounts/password-reset/", {"email": glass.email})

    assert [m.to for m in mail.outbox] == [[glass.email]]
    first, second = events("auth.password.reset.requested")
    assert first.extra["refused"] == "local_passwords_disabled"
    assert "refused" not in second.extra


@pytest.mark.django_db
def test_with_local_passwords_on_nothing_changes(user: User) -> None:
    response = sign_in(Client(), user.username)

    assert response["Location"].startswith(("/accounts/second-factor/", "/accounts/enrol/"))
    assert not events("auth.break_glass.used")


def test_turning_local_passwords_off_needs_a_provider_and_a_break_glass_account() -> None:
    with pytest.raises(LocalPasswordPolicyError, match="identity provider"):
        local_password_policy_check(
            local_passwords=False, break_glass=["glass"], providers_configured=False
        )
    with pytest.raises(LocalPasswordPolicyError, match="break-glass"):
        local_password_policy_check(
            local_passwords=False, break_glass=[" "], providers_configured=True
        )
