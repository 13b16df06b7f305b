"""Passwords: Argon2id first in production, validators, change, and single-use reset links."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.accounts.conftest import PASSWORD, actions, events
from tests.accounts.factories import sign_in_client
from tests.support.fixtures import PROJECT_ROOT, project_env

NEW_PASSWORD = "a brand new long passphrase"


def test_production_hashes_with_our_argon2id_first(tmp_path: Path) -> None:
    # conftest swaps in MD5 for speed, so ask a fresh process what the settings say
    env = project_env(tmp_path, DJANGO_SETTINGS_MODULE="safechat.settings")
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "from django.contrib.auth.hashers import make_password;"
        "print(s.PASSWORD_HASHERS[0]); print(make_password('x' * 12))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.split()  # fmt: skip

    assert out[0] == "accounts.hashers.SafeChatArgon2PasswordHasher"
    assert out[1].startswith("argon2$argon2id$v=19$m=47104,t=2,p=1$")


@pytest.mark.django_db
def test_changing_the_password_ends_the_other_sessions(user: User) -> None:
    here, elsewhere = Client(), Client()
    sign_in_client(here, user, verified=True)
    sign_in_client(elsewhere, user, verified=True)

    response = here.post(
        "/accounts/password/",
        {
            "current_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert here.get("/accounts/").status_code == 200
    assert elsewhere.get("/accounts/").status_code == 302
    assert events("auth.password.changed")[0].extra == {"other_sessions_ended": 1}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("current", "new", "reason"),
    [
        ("wrong current password", NEW_PASSWORD, "current password"),
        (PASSWORD, "short pw", "too short"),
        (PASSWORD, "123456789012345", "entirely numeric"),
        (PASSWORD, "qwerty123456", "too common"),
    ],
)
def test_a_refused_password_change_changes_nothing(
    user: User, current: str, new: str, reason: str
) -> None:
    client = Client()
    sign_in_client(client, user, verified=True)

    response = client.post(
        "/accounts/password/",
        {"current_password": current, "new_password1": new, "new_password2": new},
    )

    assert response.status_code == 400
    assert reason in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not events("auth.password.changed")


@pytest.mark.django_db
def test_an_emailed_reset_link_works_once(
    user: User, django_capture_on_commit_callbacks: Any
) -> None:
    # given a reset asked for by email address
    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/accounts/password-reset/", {"email": user.email.upper()})
    assert len(mail.outbox) == 1
    path = re.search(r"http://testserver(/accounts/password-reset/\S+/)", str(mail.outbox[0].body))
    assert path is not None

    # when the link is used
    done = Client().post(
        path.group(1), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    # then the password is new, and the link is spent
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    again = Client().post(
        path.group(1), {"new_password1": PASSWORD + "x", "new_password2": PASSWORD + "x"}
    )
    assert again.status_code == 404
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert "auth.password.reset" in actions()
    assert events("auth.password.reset.refused")


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post("/accounts/password-reset/", {"email": "nobody@bank.example"})

    assert response.status_code == 200
    assert "If an account uses that address" in response.content.decode()
    assert not mail.outbox
    assert events("auth.password.reset.requested")[0].extra == {"by": "self", "known": False}


@pytest.mark.django_db
def test_a_security_admin_reset_voids_the_password_and_mails_a_link(
    admin_client: Client, user: User, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/accounts/admin/users/{user.pk}/reset-password/")

    user.refresh_from_db()
    assert not user.has_usable_password()
    assert mail.outbox[0].to == [user.email]
    assert events("auth.password.reset.requested")[0].extra["by"] == "admin"


@pytest.mark.django_db
def test_wrong_current_passwords_lock_the_password_change_out(user: User, settings: Any) -> None:
    # given a session (perhaps stolen) guessing the current password
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    sign_in_client(client, user, verified=True)

    def attempt(current: str) -> Any:
        return client.post(
            "/accounts/password/",
            {"current_password": current, "new_password1": NEW_PASSWORD,
             "new_password2": NEW_PASSWORD},
        )  # fmt: skip

    # when it guesses wrong up to the limit, and then tries the right one
    answers = [attempt(f"guess number {i}") for i in range(3)]
    right = attempt(PASSWORD)

    # then the right one is refused too: locked out, audited, nothing changed
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert "Too many failed attempts" in answers[-1].content.decode()
    assert right.status_code == 400
    assert "Too many failed attempts" in right.content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not events("auth.password.changed")
    assert len(events("auth.lockout")) == 1
    failed = events("auth.login.failed")
    assert [e.extra.get("locked", False) for e in failed] == [False, False, False, True]
    # and the lockout is the sign-in's too: lifted by a security admin (``lockout_lift``)
    signed_in = Client().post(
        "/accounts/sign-in/", {"username": user.username, "password": PASSWORD}
    )
    assert "Too many failed attempts" in signed_in.content.decode()
