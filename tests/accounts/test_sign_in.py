"""Sign-in with password then a second factor; failures say nothing about the account."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import hashers
from django.test import Client
from pytest_django import Settings

from accounts.models import User, UserSession
from accounts.services.auth import GENERIC_FAILURE, LOCKED_OUT
from accounts.session_policy import SESSION_REVERIFIED_AT, session_key_hash
from tests.accounts.conftest import PASSWORD, actions, events
from tests.accounts.factories import make_totp_device, make_user, totp_code

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/sign-in/", {"username": username, "password": password})


def test_password_then_totp_signs_in_and_rotates_the_session_key_each_time(user: User) -> None:
    # given a user with a confirmed authenticator app
    device = make_totp_device(user)
    client = Client()
    client.get("/accounts/sign-in/")
    anonymous_key = client.session.session_key

    # when they give their password
    response = sign_in(client, user.username)

    # then the session key changed and the second factor is asked for, nothing else
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/")
    password_key = client.session.session_key
    assert password_key is not None
    assert password_key != anonymous_key
    assert client.get("/accounts/factors/").status_code == 302

    # when they give a code
    response = client.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": totp_code(device)}
    )

    # then they are in, under yet another key, and the session row follows it
    assert response.status_code == 302
    verified_key = client.session.session_key
    assert verified_key is not None
    assert verified_key not in {password_key, anonymous_key}
    assert client.get("/accounts/factors/").status_code == 200
    row = UserSession.objects.get(user=user)
    assert row.key_hash == session_key_hash(verified_key)
    assert row.verified_at is not None
    assert row.device_id == device.persistent_id
    assert verified_key not in row.key_hash
    assert client.session[SESSION_REVERIFIED_AT] > 0
    assert actions() == ["auth.password.verified", "auth.login.succeeded"]


def test_unknown_user_wrong_password_and_inactive_user_get_the_same_answer(user: User) -> None:
    # given an inactive account too
    inactive = make_user(is_active=False)

    # when three kinds of wrong sign-in are tried
    answers = [
        sign_in(Client(), "nobody-by-that-name"),
        sign_in(Client(), user.username, "wrong password entirely"),
        sign_in(Client(), inactive.username),
    ]

    # then each is the same 400 with the same message, and each is audited
    for answer in answers:
        assert answer.status_code == 400
        assert GENERIC_FAILURE in answer.content.decode()
    assert actions() == ["auth.login.failed"] * 3
    assert not UserSession.objects.exists()


def test_a_username_that_names_no_account_is_not_kept_in_the_audit_log(user: User) -> None:
    # when someone types their password into the username field, then a wrong username
    sign_in(Client(), "Correct-Horse-Battery-9")
    sign_in(Client(), user.username, "wrong password entirely")

    # then only the name of a real account is recorded
    assert [e.extra["username"] for e in events("auth.login.failed")] == [None, user.username]


def test_an_unknown_username_still_costs_one_password_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a counter on the default hasher
    calls: list[str] = []
    hasher = hashers.get_hasher("default")
    original = type(hasher).encode

    def counting_encode(self: object, password: str, salt: str) -> str:
        calls.append("hash")
        return str(original(self, password, salt))  # type: ignore[arg-type]

    monkeypatch.setattr(type(hasher), "encode", counting_encode)

    # when someone signs in as a user who does not exist
    sign_in(Client(), "ghost")

    # then the password was hashed anyway, so timing does not reveal the unknown user
    assert calls == ["hash"]


def test_repeated_wrong_passwords_lock_the_account_and_the_lockout_is_audited(
    user: User, settings: Settings
) -> None:
    settings.AXES_FAILURE_LIMIT = 3

    # when the limit of wrong passwords is reached
    for _ in range(3):
        sign_in(Client(), user.username, "wrong password entirely")

    # then even the right password is refused, with a lockout message and a 429
    response = sign_in(Client(), user.username)
    assert response.status_code == 429
    assert LOCKED_OUT in response.content.decode()
    assert len(events("auth.lockout")) == 1
    assert not events("auth.password.verified")


def test_wrong_codes_count_towards_the_account_lockout(user: User, settings: Settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    device = make_totp_device(user)
    client = Client()
    sign_in(client, user.username)

    # when wrong codes are sent up to the limit (from the same password session)
    for _ in range(3):
        client.post("/accounts/second-factor/", {"device": device.persistent_id, "code": "000000"})
        device.refresh_from_db()
        device.throttling_failure_count = 0  # django-otp's own delay is tested elsewhere
        device.save()

    # then the right code is refused too: the account is locked
    response = client.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": totp_code(device)}
    )
    assert response.status_code == 429
    assert client.get("/accounts/factors/").status_code == 302
    assert len(events("auth.otp.failed")) == 4
    assert len(events("auth.lockout")) == 1
    assert not events("auth.login.succeeded")


def test_malformed_input_is_a_400_not_a_500(user: User) -> None:
    make_totp_device(user)
    client = Client()

    assert client.post("/accounts/sign-in/", {"username": "x" * 5000}).status_code == 400
    sign_in(client, user.username)
    response = client.post("/accounts/second-factor/", {"device": "bogus", "code": "\x00" * 40})
    assert response.status_code == 400
    assert "Traceback" not in response.content.decode()


def test_an_already_verified_user_visiting_second_factor_is_sent_on(
    verified_client: Client,
) -> None:
    assert verified_client.get("/accounts/second-factor/").status_code == 302


def test_the_sign_in_page_is_served_with_a_strict_csp_and_no_inline_script() -> None:
    response = Client().get("/accounts/sign-in/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>" not in body
    assert "style=" not in body
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert settings.LOGIN_URL == "/accounts/sign-in/"
