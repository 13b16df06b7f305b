"""The invitation's account form says each refusal once, beside the field it is about:
never a field error and the same refusal again at the top of the form."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Invitation, User
from tests.accounts.conftest import events
from tests.accounts.factories import make_user

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "another long passphrase 42"


def _invitation_path(admin_client: Client, capture: Any) -> str:
    with capture(execute=True):
        admin_client.post("/accounts/admin/users/", {"email": "new@bank.example", "role": "member"})
    found = re.search(r"(/accounts/invitation/[^/]+/)", str(mail.outbox[-1].body))
    assert found is not None
    return found.group(1)


def _shown(html: str, message: str) -> int:
    return html.count(message.replace("'", "&#x27;"))


@pytest.mark.parametrize(
    ("username", "password", "field", "message"),
    [
        ("taken", NEW_PASSWORD, "username", "That username is already taken."),
        ("Taken", NEW_PASSWORD, "username", "That username is already taken."),
        # with a Cyrillic a (U+0430) among Latin letters: refused for mixing scripts (UTS
        # #39, Highly Restrictive), said once though it also looks like "taken"
        (
            "t\u0430ken",
            NEW_PASSWORD,
            "username",
            "A username may not mix letters of different scripts (such as a Cyrillic letter"
            " among Latin ones): use the letters of one script (Latin may go with Chinese,"
            " Japanese or Korean characters).",
        ),
        ("two words", NEW_PASSWORD, "username", "A username may not contain spaces."),
        ("nina", "password1234", "new_password1", "This password is too common."),
        (
            "someone",
            "someone12345",
            "new_password1",
            "The password is too similar to the username.",
        ),
    ],
)
def test_each_refusal_is_said_once_beside_its_field(
    admin_client: Client,
    django_capture_on_commit_callbacks: Any,
    username: str,
    password: str,
    field: str,
    message: str,
) -> None:
    # given an invitation, and someone called "taken" already
    make_user(username="taken")
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks)

    # when the invitee sends a refused name or password
    response = Client().post(
        path, {"username": username, "new_password1": password, "new_password2": password}
    )

    # then the refusal is on its field, once, and nowhere else on the page
    assert response.status_code == 400
    form = response.context["form"]
    assert [str(m) for m in form.errors[field]] == [message]
    assert set(form.errors) == {field}
    assert response.context["errors"] == []
    assert _shown(response.content.decode(), message) == 1
    # and nothing was created; the link still works
    assert not User.objects.filter(username=username.lower()).exclude(username="taken").exists()
    assert Invitation.objects.get().accepted_at is None
    assert not events("account.created")


def test_a_taken_name_and_a_weak_password_are_both_said_each_on_its_field(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    make_user(username="taken")
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks)

    response = Client().post(
        path, {"username": "taken", "new_password1": "short", "new_password2": "short"}
    )

    assert response.status_code == 400
    errors = {
        name: [str(m) for m in found] for name, found in response.context["form"].errors.items()
    }
    assert errors == {
        "username": ["That username is already taken."],
        "new_password1": ["This password is too short. It must contain at least 12 characters."],
    }
    assert response.context["errors"] == []
    page = response.content.decode()
    assert all(_shown(page, m) == 1 for found in errors.values() for m in found)


def test_an_invited_address_taken_meanwhile_is_said_once_at_the_top(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # given an invitation, and an account given the invited address since
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks)
    make_user(username="early", email="New@bank.example")

    response = Client().post(
        path, {"username": "nina", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    # then the form has no field for it: the page says it once, in words
    assert response.status_code == 400
    assert response.context["form"].errors == {}
    assert response.context["errors"] == ["An account with that email address exists already."]
    assert _shown(response.content.decode(), "An account with that email address exists") == 1
    assert not User.objects.filter(username="nina").exists()
