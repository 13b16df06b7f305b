"""OpenID Connect Back-Channel Logout 1.0, against a real provider (django-oauth-toolkit in
its own process, ``tests/oidc_provider``): its ID tokens carry the person's ``sid`` there,
and it signs the Logout Tokens with its own key, the one its JWKS publishes. A valid token
ends the sessions it names and their live sockets, nothing else; every bad token is
refused with 400, ends nothing, and is audited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_django import Settings

from accounts.models import OidcLogoutTokenUse, UserSession
from accounts.realtime import CLOSE_SESSION_ENDED
from accounts.sso import OidcProvider
from audit.models import AuditEvent
from safechat.asgi import application
from tests.accounts.conftest import events
from tests.accounts.factories import make_user, totp_code
from tests.accounts.test_sso_oidc import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    KEY,
    linked_person,
    sign_in,
)
from tests.rooms.concurrency import postgresql_only, run_together
from tests.support import sockets
from tests.support.oidc import OidcProviderServer

LOGOUT_PATH = f"/accounts/oidc/{KEY}/backchannel-logout/"
EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def provider(oidc_provider: OidcProviderServer, settings: Settings) -> Iterator[OidcProviderServer]:
    """SafeChat configured with the provider (RS256 only)."""
    oidc_provider.client_register(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=CALLBACK
    )
    oidc_provider.behave()
    settings.SAFECHAT_OIDC_PROVIDERS = (
        OidcProvider(
            key=KEY,
            name="Bank SSO",
            issuer=oidc_provider.issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            algorithms=("RS256",),
        ),
    )
    yield oidc_provider
    oidc_provider.behave()


def signed_in(server: OidcProviderServer, username: str) -> tuple[Client, UserSession]:
    """A person linked to their identity at the provider, signed in through it."""
    linked_person(server, username)
    client = Client()
    assert sign_in(client, server, username).status_code == 302
    return client, UserSession.objects.get(user__username=username)


def post_logout(token: str, *, path: str = LOGOUT_PATH) -> Any:
    # The provider's own server posts, with no cookie: a fresh client each time.
    return Client().post(path, {"logout_token": token})


def live(row: UserSession) -> bool:
    row.refresh_from_db()
    return row.ended_at is None


def refusal(reason: str) -> AuditEvent:
    (event,) = events("auth.federated.refused")
    assert event.extra["reason"] == reason, event.extra
    assert event.extra["provider"] == KEY
    assert event.extra["detail"].startswith("back-channel logout")
    return event


# --- what the provider names ends, and nothing else ------------------------------------


@pytest.mark.django_db
def test_the_sign_in_records_the_providers_session_id(provider: OidcProviderServer) -> None:
    _, row = signed_in(provider, "amy")
    assert row.federated_session_index
    assert row.federated_identity is not None


@pytest.mark.django_db
def test_a_logout_token_ends_the_session_it_names_and_nothing_else(
    provider: OidcProviderServer,
) -> None:
    # given a person signed in through the provider twice (the second a newer session
    # there), and someone else's session
    _, first = signed_in(provider, "ben")
    second_client = Client()
    sign_in(second_client, provider, "ben")
    second = UserSession.objects.filter(user__username="ben").exclude(pk=first.pk).get()
    assert second.federated_session_index != first.federated_session_index
    other = UserSession.objects.create(
        user=make_user(username="carl"), key_hash="c" * 64, last_seen_at=first.last_seen_at
    )

    # when the provider posts a Logout Token for the newer session (sub and sid)
    response = post_logout(provider.logout_token("ben", client_id=CLIENT_ID))

    # then that session ends (its browser is signed out), the rest live on
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert not live(second)
    second.refresh_from_db()
    assert second.end_reason == "provider_logout"
    assert second_client.get("/rooms/")["Location"].startswith("/accounts/sign-in/")
    assert live(first)
    assert live(other)
    # and the logout is on record, its jti used
    (event,) = events("auth.federated.logout")
    assert event.actor_id is None
    assert event.target_id == str(second.user_id)
    assert event.extra["sessions_ended"] == 1
    assert event.extra["session_indexes"] == [second.federated_session_index]
    assert event.extra["subject"] == first.federated_identity.subject  # type: ignore[union-attr]
    assert OidcLogoutTokenUse.objects.count() == 1
    assert events("auth.federated.refused") == []


@pytest.mark.django_db
def test_a_logout_token_with_only_a_sid_ends_that_session(provider: OidcProviderServer) -> None:
    _, row = signed_in(provider, "dina")
    _, other = signed_in(provider, "emil")

    response = post_logout(provider.logout_token("dina", client_id=CLIENT_ID, names=("sid",)))

    assert response.status_code == 200
    assert not live(row)
    assert live(other)
    (event,) = events("auth.federated.logout")
    assert event.extra["subject"] == ""
    assert event.target_id == str(row.user_id)
    assert event.extra["sessions_ended"] == 1


@pytest.mark.django_db
def test_a_logout_token_with_only_a_sub_ends_every_session_of_that_link(
    provider: OidcProviderServer,
) -> None:
    _, first = signed_in(provider, "finn")
    sign_in(Client(), provider, "finn")
    local = UserSession.objects.create(  # a password sign-in of the same account
        user=first.user, key_hash="f" * 64, last_seen_at=first.last_seen_at
    )
    _, other = signed_in(provider, "gina")

    response = post_logout(provider.logout_token("finn", client_id=CLIENT_ID, names=("sub",)))

    assert response.status_code == 200
    assert UserSession.objects.filter(user=first.user, federated_identity__isnull=False).filter(
        ended_at__isnull=True
    ).count() == 0  # fmt: skip
    assert live(local)  # not signed in through the provider: not its session to end
    assert live(other)
    assert events("auth.federated.logout")[0].extra["sessions_ended"] == 2


@pytest.mark.django_db
def test_a_logout_token_for_a_session_no_longer_here_ends_nothing_and_is_answered(
    provider: OidcProviderServer,
) -> None:
    _, row = signed_in(provider, "hugo")
    provider.browser("hugo")  # a new session at the provider: a new sid

    response = post_logout(provider.logout_token("hugo", client_id=CLIENT_ID, names=("sid",)))

    assert response.status_code == 200
    assert live(row)
    assert events("auth.federated.logout")[0].extra["sessions_ended"] == 0


# --- the live socket ---------------------------------------------------------------------


def _verified_federated_session(server: OidcProviderServer, username: str) -> str:
    """Sign in through the provider, then give SafeChat's own code: the session cookie."""
    user, _ = linked_person(server, username)
    client = Client()
    assert sign_in(client, server, username).status_code == 302
    device = TOTPDevice.objects.get(user=user)
    done = client.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": totp_code(device)}
    )
    assert done.status_code == 302
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


async def _socket(cookie: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[
            (b"origin", b"http://localhost:8000"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    return communicator


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_logout_token_closes_the_live_socket_of_the_session_and_no_other(
    provider: OidcProviderServer,
) -> None:
    # given two people signed in through the provider, each with a live socket
    ida = await _socket(await database_sync_to_async(_verified_federated_session)(provider, "ida"))
    jan = await _socket(await database_sync_to_async(_verified_federated_session)(provider, "jan"))
    token = await database_sync_to_async(provider.logout_token)("ida", client_id=CLIENT_ID)

    # when the provider posts a Logout Token for the first one's session
    response = await database_sync_to_async(post_logout)(token)

    # then that socket closes at once, the other lives on
    assert response.status_code == 200
    code, _ = await sockets.closed_with(ida)
    assert code == CLOSE_SESSION_ENDED
    await jan.send_json_to({"type": "ping"})
    assert await jan.receive_json_from() == {"type": "pong"}
    await jan.disconnect()
    await ida.disconnect()


# --- bad tokens: 400, nothing ended, audited --------------------------------------------

BAD_TOKENS = [
    pytest.param({"sign": "none"}, "algorithm", id="unsigned-alg-none"),
    pytest.param({"sign": "HS256-public-key"}, "algorithm", id="hs256-with-the-rsa-key"),
    pytest.param({"sign": "forged"}, "signature", id="another-key"),
    pytest.param(
        {"sign": "forged", "header": {"kid": "not-published"}}, "signature", id="unknown-kid"
    ),
    pytest.param({"claims": {"iss": "https://other.example/o"}}, "issuer", id="wrong-issuer"),
    pytest.param({"claims": {"aud": "another-application"}}, "audience", id="wrong-audience"),
    pytest.param({"drop": ["aud"]}, "audience", id="no-audience"),
    pytest.param({"claims": {"exp": int(time.time()) - 3600}}, "expired", id="expired"),
    pytest.param({"claims": {"iat": int(time.time()) - 3600}}, "expired", id="iat-too-old"),
    pytest.param({"claims": {"iat": int(time.time()) + 3600}}, "issued_at", id="iat-future"),
    pytest.param({"drop": ["iat"]}, "issued_at", id="no-iat"),
    pytest.param({"drop": ["jti"]}, "jti", id="no-jti"),
    pytest.param({"drop": ["events"]}, "events", id="no-events"),
    pytest.param({"claims": {"events": {"other": {}}}}, "events", id="other-event"),
    pytest.param({"claims": {"events": {EVENT: "yes"}}}, "events", id="event-not-an-object"),
    pytest.param({"claims": {"events": [EVENT]}}, "events", id="events-a-list"),
    pytest.param({"claims": {"nonce": "n-0S6_WzA2Mj"}}, "nonce_present", id="nonce"),
    pytest.param({"drop": ["sub", "sid"]}, "logout_subject", id="neither-sub-nor-sid"),
]


@pytest.mark.parametrize(("behaviour", "reason"), BAD_TOKENS)
@pytest.mark.django_db
def test_a_bad_logout_token_ends_nothing(
    provider: OidcProviderServer, behaviour: dict[str, Any], reason: str
) -> None:
    # given a person signed in through the provider
    _, row = signed_in(provider, "kim")

    # when a Logout Token for their session arrives, bad in one way
    response = post_logout(provider.logout_token("kim", client_id=CLIENT_ID, **behaviour))

    # then it is refused as the spec says, nothing ends, and the refusal is on record
    assert response.status_code == 400
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == "invalid_request"
    assert live(row)
    assert events("auth.federated.logout") == []
    assert OidcLogoutTokenUse.objects.count() == 0
    refusal(reason)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="missing"),
        pytest.param("not-a-jwt", id="not-a-jwt"),
        pytest.param("a.b.c", id="garbage-parts"),
        pytest.param("eyJhbGciOiJSUzI1NiJ9.e30.AAAA", id="bad-signature-bytes"),
        pytest.param("x" * 20_000, id="too-long"),
    ],
)
@pytest.mark.django_db
def test_a_malformed_logout_token_is_refused(provider: OidcProviderServer, token: str) -> None:
    _, row = signed_in(provider, "lena")

    response = post_logout(token)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert live(row)
    assert events("auth.federated.logout") == []
    assert events("auth.federated.refused")[0].extra["reason"] in {"logout_token", "signature"}


@pytest.mark.django_db
def test_a_replayed_logout_token_is_refused(provider: OidcProviderServer) -> None:
    # given a Logout Token that was used
    client = Client()
    linked_person(provider, "mona")
    sign_in(client, provider, "mona")
    token = provider.logout_token("mona", client_id=CLIENT_ID, names=("sub",))
    assert post_logout(token).status_code == 200
    # and the person signed in again since
    sign_in(Client(), provider, "mona")
    again = UserSession.objects.get(user__username="mona", ended_at__isnull=True)

    # when it is posted again
    response = post_logout(token)

    # then it is refused as a replay and ends nothing
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert live(again)
    assert len(events("auth.federated.logout")) == 1
    (refused,) = events("auth.federated.refused")
    assert refused.extra["reason"] == "replayed"
    assert OidcLogoutTokenUse.objects.count() == 1


@pytest.mark.django_db
def test_a_logout_for_an_unknown_provider_is_not_found(provider: OidcProviderServer) -> None:
    _, row = signed_in(provider, "nora")
    token = provider.logout_token("nora", client_id=CLIENT_ID)

    response = post_logout(token, path="/accounts/oidc/nowhere/backchannel-logout/")

    assert response.status_code == 404
    assert response["Cache-Control"] == "no-store"
    assert live(row)
    (event,) = events("auth.federated.refused")
    assert event.extra["reason"] == "unknown_provider"
    assert event.extra["provider"] == "nowhere"


@pytest.mark.django_db
def test_the_logout_endpoint_takes_only_posts(provider: OidcProviderServer) -> None:
    assert Client().get(LOGOUT_PATH).status_code == 405


@pytest.mark.django_db
def test_logout_tokens_past_the_rate_limit_are_refused_unread(
    provider: OidcProviderServer, settings: Settings
) -> None:
    settings.SAFECHAT_SSO_RATE_LIMIT = (2, 60)
    _, row = signed_in(provider, "olga")  # one answer (the callback) counted
    token = provider.logout_token("olga", client_id=CLIENT_ID)
    assert post_logout("junk").status_code == 400  # the second

    response = post_logout(token)

    assert response.status_code == 429
    assert response["Retry-After"]
    assert live(row)
    assert events("auth.federated.logout") == []


@pytest.mark.django_db
def test_expired_token_records_are_deleted_as_new_ones_arrive(
    provider: OidcProviderServer,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    OidcLogoutTokenUse.objects.create(
        issuer=provider.issuer, jti="old", expires_at=timezone.now() - timedelta(seconds=1)
    )
    signed_in(provider, "paul")

    assert post_logout(provider.logout_token("paul", client_id=CLIENT_ID)).status_code == 200

    assert list(OidcLogoutTokenUse.objects.values_list("jti", flat=True)) != ["old"]
    assert not OidcLogoutTokenUse.objects.filter(jti="old").exists()


@postgresql_only("two deliveries of one token race only where rows lock one by one")
@pytest.mark.parametrize("round_", range(3))
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_logout_token_at_the_same_instant_end_sessions_once(
    provider: OidcProviderServer, round_: int
) -> None:
    # given a person signed in through the provider, and a Logout Token for them
    _, row = signed_in(provider, f"quinn{round_}")
    token = provider.logout_token(f"quinn{round_}", client_id=CLIENT_ID)

    # when the provider (or someone who copied it) posts it twice at the same instant
    outcomes = run_together(lambda: post_logout(token), lambda: post_logout(token))

    # then exactly one is carried out; the other is refused as a replay, both on record
    assert [o.error for o in outcomes] == [None, None]
    assert sorted(o.value.status_code for o in outcomes) == [200, 400]
    assert not live(row)
    assert len(events("auth.federated.logout")) == 1
    assert [e.extra["reason"] for e in events("auth.federated.refused")] == ["replayed"]
    assert OidcLogoutTokenUse.objects.count() == 1
