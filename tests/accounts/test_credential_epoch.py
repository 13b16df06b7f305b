"""Credential changes end what was issued before them: sessions, sockets and tokens.

A reset made to a user (by an admin, of their factors, or a deactivation) is the
"account compromised" response: every session and token ends. The user's own password
change keeps the session that made it and their tokens, and ends the other sessions.
"""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, User, UserSession
from accounts.roles import Role
from accounts.services import (
    api_token_create,
    factors_reset,
    password_reset_by_admin,
    user_deactivate,
)
from accounts.services._common import InvalidLink
from accounts.services.factors import totp_enrol_confirm, totp_enrolment_device
from accounts.services.sessions import SessionNoLongerValid
from accounts.services.users import (
    PasswordRejected,
    _reset_link,
    password_change,
    password_reset_confirm,
)
from rooms.models import Message
from tests.accounts.conftest import PASSWORD, events
from tests.accounts.factories import grant_role, make_user, sign_in_client
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
    # a member, not the room's only owner (whose deactivation is refused)
    room = make_room(owner=make_user(), members=(user,))
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


def test_a_token_born_under_an_older_epoch_stays_dead_through_the_users_own_change(
    security_admin: User, user: User
) -> None:
    # given a token minted by a request that authenticated before an admin's reset committed
    room = make_room(owner=user)
    stale = User.objects.get(pk=user.pk)
    password_reset_by_admin(actor=security_admin, user=User.objects.get(pk=user.pk))
    _, secret = api_token_create(actor=stale, name="raced", scope="write")
    assert read_with(secret, room.pk) == 401

    # when the user recovers (a reset link) and later changes their password themselves
    link_user = User.objects.get(pk=user.pk)
    uid, token = _reset_link(None, link_user).rstrip("/").split("/")[-2:]
    password_reset_confirm(
        request=RequestFactory().post("/"), uidb64=uid, token=token, new_password=NEW_PASSWORD
    )
    here = Client()
    sign_in_client(here, User.objects.get(pk=user.pk), verified=True)
    here.post(
        "/accounts/password/",
        {
            "current_password": NEW_PASSWORD,
            "new_password1": PASSWORD + " again",
            "new_password2": PASSWORD + " again",
        },
    )

    # then the raced token is still refused, and now revoked on the record
    assert read_with(secret, room.pk) == 401
    assert ApiToken.objects.get().revoked_at is not None


def test_a_password_change_in_flight_never_undoes_an_admin_reset(
    security_admin: User, user: User
) -> None:
    # given a password-change request that loaded its user before a reset committed
    client = Client()
    sign_in_client(client, user, verified=True)
    request = RequestFactory().post("/accounts/password/")
    request.session = SessionStore(session_key=client.session.session_key)
    stale = User.objects.get(pk=user.pk)
    request.user = stale
    password_reset_by_admin(actor=security_admin, user=User.objects.get(pk=user.pk))
    factors_reset(actor=security_admin, user=User.objects.get(pk=user.pk))

    # when the in-flight change completes
    with pytest.raises(PasswordRejected, match="session has ended"):
        password_change(
            request=request,
            user=stale,
            current_password=PASSWORD,
            new_password="attacker chosen passphrase 42",
        )

    # then the reset stands: the chosen password does not work, nothing was recorded
    assert not User.objects.get(pk=user.pk).check_password("attacker chosen passphrase 42")
    assert not events("auth.password.changed")


def test_a_reset_link_in_flight_never_undoes_an_admin_reset(
    security_admin: User, user: User
) -> None:
    # given a reset link whose check passed before a security admin's reset committed
    uid, token = _reset_link(None, user).rstrip("/").split("/")[-2:]
    password_reset_by_admin(actor=security_admin, user=User.objects.get(pk=user.pk))

    with pytest.raises(InvalidLink):
        password_reset_confirm(
            request=RequestFactory().post("/"), uidb64=uid, token=token, new_password=NEW_PASSWORD
        )

    assert not User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    assert events("auth.password.reset.refused")


def test_factor_devices_are_not_in_the_django_admin(user: User) -> None:
    # given a security admin in the admin, and a user's session verified with a TOTP device
    root = grant_role(make_user(username="root"), Role.SECURITY_ADMIN)
    admin = Client()
    sign_in_client(admin, root, verified=True)
    device = sign_in_client(Client(), user, verified=True)
    assert device is not None

    page = admin.get(f"/admin/otp_totp/totpdevice/{device.pk}/delete/")
    posted = admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    change = admin.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    add = admin.post("/admin/otp_totp/totpdevice/add/", {"user": user.pk, "name": "rogue"})
    config = admin.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/")
    index = admin.get("/admin/")

    assert [r.status_code for r in (page, posted, change, add, config)] == [404] * 5
    assert list(TOTPDevice.objects.filter(user=user)) == [device]
    assert device.key not in index.content.decode()  # the secret is never shown
    assert "totpdevice" not in index.content.decode()


def test_a_password_change_refused_in_flight_is_recorded_once(
    security_admin: User, user: User
) -> None:
    # given a password-change request whose session an admin's reset ended under it
    client = Client()
    sign_in_client(client, user, verified=True)
    request = RequestFactory().post("/accounts/password/")
    request.session = SessionStore(session_key=client.session.session_key)
    stale = User.objects.get(pk=user.pk)
    request.user = stale
    password_reset_by_admin(actor=security_admin, user=User.objects.get(pk=user.pk))

    # when the in-flight change completes, it is refused
    with pytest.raises(PasswordRejected, match="session has ended"):
        password_change(
            request=request, user=stale, current_password=PASSWORD, new_password=NEW_PASSWORD
        )

    # then the refusal is on the record, once, as the person's own
    (refused,) = events("auth.session.refused")
    assert refused.actor_id == user.pk
    assert refused.target_id == str(user.pk)
    assert refused.extra["reason"] == "session"


def test_a_factor_enrolment_refused_in_flight_is_recorded_once(
    security_admin: User, user: User
) -> None:
    # given a first enrolment whose session an admin's deactivation ended under it
    client = Client()
    sign_in_client(client, user, verified=False)
    request = RequestFactory().post("/accounts/enrol/")
    request.session = SessionStore(session_key=client.session.session_key)
    stale = User.objects.get(pk=user.pk)
    request.user = stale
    device = totp_enrolment_device(user=stale)
    user_deactivate(actor=security_admin, user=User.objects.get(pk=user.pk))

    # when the in-flight confirmation completes, it is refused and confirms nothing
    with pytest.raises(SessionNoLongerValid):
        totp_enrol_confirm(request=request, user=stale, device=device, code="123456", name="x")

    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    (refused,) = events("auth.session.refused")
    assert refused.actor_id == user.pk
    assert refused.extra["reason"] == "inactive"
