"""Passkeys through django-otp-webauthn's real endpoints, with a software authenticator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import User
from tests.accounts.conftest import PASSWORD, actions, events
from tests.accounts.factories import make_totp_device
from tests.accounts.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.django_db
BASE = "/accounts/webauthn"


def post_json(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def password_session(user: User) -> Client:
    client = Client()
    client.post("/accounts/sign-in/", {"username": user.username, "password": PASSWORD})
    return client


def register(client: Client, authenticator: SoftAuthenticator) -> Any:
    options = post_json(client, f"{BASE}/registration/begin/")
    assert options.status_code == 200, options.content
    return post_json(
        client, f"{BASE}/registration/complete/", authenticator.register(options.json())
    )


def authenticate(client: Client, authenticator: SoftAuthenticator) -> Any:
    options = post_json(client, f"{BASE}/authentication/begin/")
    assert options.status_code == 200, options.content
    return post_json(
        client, f"{BASE}/authentication/complete/", authenticator.sign_assertion(options.json())
    )


def test_enrolment_with_a_security_key_then_sign_in_with_it(user: User) -> None:
    # given a new user after the password, with no factor yet
    key = SoftAuthenticator()
    client = password_session(user)

    # when they register a security key during the forced enrolment
    registered = register(client, key)

    # then it is their factor and their session is verified
    assert registered.status_code == 200, registered.content
    credential = WebAuthnCredential.objects.get(user=user)
    assert credential.confirmed
    assert credential.name == "Passkey"
    assert client.get("/accounts/").status_code == 200
    assert events("factor.added")[0].extra["factor"] == "passkey"

    # when they sign in again later with password and the key
    later = password_session(user)
    assert later.get("/accounts/").status_code == 302
    answer = authenticate(later, key)

    # then they are in
    assert answer.status_code == 200, answer.content
    assert answer.json()["redirect_url"]
    assert later.get("/accounts/").status_code == 200
    assert actions()[-1] == "auth.login.succeeded"


def test_an_assertion_from_another_key_is_refused_and_audited(user: User) -> None:
    key = SoftAuthenticator()
    register(password_session(user), key)
    impostor = SoftAuthenticator(credential_id=key.credential_id)  # same id, other private key

    client = password_session(user)
    answer = authenticate(client, impostor)

    assert answer.status_code == 422
    assert "Traceback" not in answer.content.decode()
    assert client.get("/accounts/").status_code == 302
    assert events("auth.otp.failed")[-1].extra["reason"].startswith("passkey:")


def test_a_replayed_assertion_is_refused(user: User) -> None:
    key = SoftAuthenticator()
    register(password_session(user), key)
    client = password_session(user)
    options = post_json(client, f"{BASE}/authentication/begin/").json()
    assertion = key.sign_assertion(options)
    assert post_json(client, f"{BASE}/authentication/complete/", assertion).status_code == 200

    replay_client = password_session(user)
    post_json(replay_client, f"{BASE}/authentication/begin/")
    replayed = post_json(replay_client, f"{BASE}/authentication/complete/", assertion)

    assert replayed.status_code in {400, 422}
    assert replay_client.get("/accounts/").status_code == 302


def test_registering_another_key_needs_a_second_factor_first(user: User) -> None:
    # given a user with an authenticator app, signed in with the password only
    make_totp_device(user)
    client = password_session(user)

    # when they try to register a key to skip the code
    begin = post_json(client, f"{BASE}/registration/begin/")

    # then it is refused, and no credential exists
    assert begin.status_code in {302, 403}
    assert not WebAuthnCredential.objects.exists()


def test_malformed_json_is_a_4xx(user: User) -> None:
    client = password_session(user)
    post_json(client, f"{BASE}/registration/begin/")

    bad = client.post(
        f"{BASE}/registration/complete/", "{not json", content_type="application/json"
    )
    junk = post_json(client, f"{BASE}/registration/complete/", {"id": 3})

    assert bad.status_code == 400
    assert 400 <= junk.status_code < 500
    assert not WebAuthnCredential.objects.exists()


def test_a_failed_passkey_registration_is_audited_and_adds_nothing(user: User) -> None:
    client = password_session(user)
    post_json(client, f"{BASE}/registration/begin/")

    junk = post_json(client, f"{BASE}/registration/complete/", {"id": 3})

    assert 400 <= junk.status_code < 500
    assert not WebAuthnCredential.objects.exists()
    failures = events("auth.otp.failed")
    assert [(e.actor_id, e.extra["factor"], e.extra["reason"]) for e in failures] == [
        (user.pk, "webauthn", "registration")
    ]
    assert "factor.added" not in actions()
