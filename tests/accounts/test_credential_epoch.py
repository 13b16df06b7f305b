"""Credential changes end what was issued before them: sessions, sockets and tokens.

A reset made to a user (by an admin, of their factors, or a deactivation) is the
"account compromised" response: every session and token ends. The user's own password
change keeps the session that made it and their tokens, and ends the other sessions.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import ApiToken, User, UserSession
from accounts.services import (
    api_token_create,
    factors_reset,
    password_reset_by_admin,
    user_deactivate,
)
from rooms.models import Message
from tests.accounts.conftest import PASSWORD, events
from tests.accounts.factories import sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a n3w and l0nger passphrase"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post_with(secret: str, room_id: int, text: str) -> int:
    response = Client().post(
        f"/api/v1/rooms/{room_id}/messages/",
        {"text": text},
        content_type="application/json",
        headers=bearer(secret),
    )
    return response.status_code


def read_with(secret: str, room_id: int) -> int:
    return Client().get(f"/api/v1/rooms/{room_id}/messages/", headers=bearer(secret)).status_code


@pytest.mark.parametrize("reset", ["password_reset_by_admin", "factors_reset"])
def test_an_admin_reset_ends_every_session_and_token_of_the_user(
    reset: str, security_admin: User, user: User
) -> None:
    # given a user with a live session and a write token that reads and posts
    room = make_room(owner=user)
    client = Client()
    sign_in_client(client, user, verified=True)
    _, secret = api_token_create(actor=user, name="desk bot", scope="write")
    assert read_with(secret, room.pk) == 200

    # when a security admin resets their password (or their factors)
    {"password_reset_by_admin": password_reset_by_admin, "factors_reset": factors_reset}[reset](
        actor=security_admin, user=user
    )

    # then the token neither reads nor posts, the session is signed out, all audited
    assert read_with(secret, room.pk) == 401
    assert post_with(secret, room.pk, "after the reset") == 401
    assert not Message.objects.filter(room=room).exists()
    assert client.get("/accounts/factors/").status_code == 302
    assert not UserSession.objects.filter(user=user, ended_at__isnull=True).exists()
    assert ApiToken.objects.get().revoked_at is not None
    reason = events("token.used.refused")[-1].extra["reason"]
    assert reason in {"revoked", "credentials_changed"}
    action = (
        "auth.password.reset.requested" if reset == "password_reset_by_admin" else "factor.reset"
    )
    assert events(action)[-1].extra["tokens_revoked"] == 1


def test_a_deactivation_stops_tokens_issued_before_it(security_admin: User, user: User) -> None:
    room = make_room(owner=user)
    _, secret = api_token_create(actor=user, name="desk bot", scope="write")

    user_deactivate(actor=security_admin, user=user)

    assert read_with(secret, room.pk) == 401
    assert events("account.deactivated")[-1].extra["tokens_revoked"] == 1


def test_a_token_issued_under_an_older_credential_epoch_is_refused(user: User) -> None:
    # given a token minted by a request that authenticated before a reset committed
    room = make_room(owner=user)
    stale = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(credential_epoch=stale.credential_epoch + 1)

    _, secret = api_token_create(actor=stale, name="raced", scope="write")

    assert read_with(secret, room.pk) == 401
    assert events("token.used.refused")[-1].extra["reason"] == "credentials_changed"


def test_my_password_change_keeps_this_session_and_my_tokens_and_ends_the_others(
    user: User,
) -> None:
    room = make_room(owner=user)
    here, elsewhere = Client(), Client()
    sign_in_client(here, user, verified=True)
    sign_in_client(elsewhere, user, verified=True)
    _, secret = api_token_create(actor=user, name="desk bot", scope="write")

    response = here.post(
        "/accounts/password/",
        {
            "current_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code in (200, 302)
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    assert here.get("/accounts/factors/").status_code == 200
    assert elsewhere.get("/accounts/factors/").status_code == 302
    assert read_with(secret, room.pk) == 200
    assert events("auth.password.changed")[-1].extra["other_sessions_ended"] == 1


def test_the_admin_password_change_page_leads_to_the_audited_one(
    admin_client: Client, security_admin: User
) -> None:
    # when a staff member opens and posts Django's own admin password form
    page = admin_client.get("/admin/password_change/")
    posted = admin_client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    # then both lead to the portal's page, and nothing changed outside the service
    assert page.status_code == 302
    assert page.headers["Location"] == "/accounts/password/"
    assert posted.status_code == 302
    assert User.objects.get(pk=security_admin.pk).check_password(PASSWORD)
    assert not events("auth.password.changed")
