"""Signing out of the provider too (OpenID Connect RP-Initiated Logout 1.0), against the
real provider (``tests/oidc_provider``, django-oauth-toolkit's end_session_endpoint)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from pytest_django import Settings

from accounts.models import UserSession
from tests.accounts.conftest import events
from tests.accounts.federation import signed_in_as
from tests.accounts.test_sso_oidc import (
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    configure,
    linked_person,
    to_provider,
)
from tests.support.oidc import OidcProviderServer

pytest_plugins = ["tests.accounts.test_sso_oidc"]

SIGN_IN = "http://testserver/accounts/sign-in/"


@pytest.fixture
def logout_registered(provider: OidcProviderServer) -> OidcProviderServer:
    provider.client_register(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=CALLBACK,
        post_logout_redirect_uri=SIGN_IN,
    )  # fmt: skip
    return provider


def signed_in_through(server: OidcProviderServer, username: str) -> tuple[Client, object]:
    """A SafeChat session signed in through the provider, and the person's browser there."""
    browser = server.browser(username)
    client = Client()
    answer = browser.get(to_provider(client), allow_redirects=False, timeout=10)
    parts = urlsplit(answer.headers["Location"])
    client.get(f"{parts.path}?{parts.query}")
    return client, browser


@pytest.mark.django_db
def test_signing_out_ends_the_session_here_and_then_at_the_provider(
    logout_registered: OidcProviderServer,
) -> None:
    # given a person signed in here through the provider
    user, _ = linked_person(logout_registered, "wendy")
    client, browser = signed_in_through(logout_registered, "wendy")
    assert signed_in_as(client) == user.pk

    # when they sign out here
    response = client.post("/accounts/sign-out/")

    # then this session is over at once, and the browser goes on to the provider's
    # end_session_endpoint with the ID token as its hint
    assert signed_in_as(client) is None
    assert not UserSession.objects.filter(user=user, ended_at__isnull=True).exists()
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{logout_registered.base}/o/logout/?")
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["post_logout_redirect_uri"] == [SIGN_IN]
    assert query["id_token_hint"][0].count(".") == 2
    assert query["state"][0]
    logout = events("auth.logout")[-1]
    assert logout.extra == {"reason": "signed_out", "provider_logout": "bank"}
    assert query["id_token_hint"][0] not in str(logout.extra)
    # and the provider ends its session and sends the browser back to SafeChat
    back = browser.get(location, allow_redirects=False, timeout=10)  # type: ignore[attr-defined]
    assert back.status_code == 302
    assert back.headers["Location"].startswith(SIGN_IN)
    again = browser.get(to_provider(Client()), allow_redirects=False, timeout=10)  # type: ignore[attr-defined]
    assert "/control/login/" in again.headers["Location"]


@pytest.mark.django_db
def test_a_provider_no_longer_configured_leaves_a_plain_sign_out(
    logout_registered: OidcProviderServer, settings: Settings
) -> None:
    # given a person signed in through a provider that is then configured away
    user, _ = linked_person(logout_registered, "xena")
    client, _ = signed_in_through(logout_registered, "xena")
    configure(settings, logout_registered, key="other")

    # when they sign out
    response = client.post("/accounts/sign-out/")

    # then SafeChat's session is over, and they are on SafeChat's sign-in page
    assert response["Location"] == "/accounts/sign-in/"
    assert signed_in_as(client) is None
    assert not UserSession.objects.filter(user=user, ended_at__isnull=True).exists()
