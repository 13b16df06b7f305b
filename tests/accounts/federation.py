"""What OIDC and SAML sign-in tests check alike: who the browser is signed in as, that a
refused answer created nothing, the refusal's event, and the second-factor outcomes."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ProviderMfaDevice, User, UserSession
from audit.models import AuditEvent
from tests.accounts.conftest import events
from tests.accounts.factories import totp_code


def signed_in_as(client: Client) -> int | None:
    """The id of the account ``client``'s session is signed in as, or None."""
    user_id = client.session.get("_auth_user_id")
    return int(user_id) if user_id else None


def assert_nothing_created(client: Client, users_before: int) -> None:
    """Nobody signed in, no account, session or provider record made, no sign-in audited."""
    assert signed_in_as(client) is None
    assert User.objects.count() == users_before
    assert not UserSession.objects.exists()
    assert not ProviderMfaDevice.objects.exists()
    assert events("auth.federated.verified") == []
    assert events("auth.login.succeeded") == []


def refusal(reason: str, *, provider: str | None = None) -> AuditEvent:
    """The one ``auth.federated.refused`` event, for ``reason`` (and ``provider`` when
    given), from the portal with its address and request id."""
    (event,) = events("auth.federated.refused")
    assert event.extra["reason"] == reason, event.extra
    if provider is not None:
        assert event.extra["provider"] == provider
    assert event.channel == "portal"
    assert event.source_ip == "127.0.0.1"
    assert event.request_id
    return event


def assert_second_factor_due(client: Client, response: Any, user: User) -> AuditEvent:
    """``user`` is signed in password-equivalent (SafeChat's second factor due, asked
    before anything else), and the sign-in is audited with its channel, address and
    request id; returns its ``auth.federated.verified`` event."""
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/?next=/rooms/")
    assert signed_in_as(client) == user.pk
    row = UserSession.objects.get(user=user)
    assert row.device_id == ""
    assert row.verified_at is None
    assert client.get("/rooms/")["Location"].startswith("/accounts/second-factor/")
    (verified,) = events("auth.federated.verified")
    assert verified.actor_id == user.pk
    assert verified.channel == "portal"
    assert verified.source_ip == "127.0.0.1"
    assert verified.request_id
    assert verified.extra["second_factor_done"] is False
    assert events("auth.login.succeeded") == []
    return verified


def assert_own_code_completes_the_sign_in(client: Client, user: User) -> None:
    """Giving SafeChat's own TOTP code completes ``user``'s sign-in (one login event)."""
    device = TOTPDevice.objects.get(user=user)
    done = client.post(
        "/accounts/second-factor/?next=/rooms/",
        {"device": device.persistent_id, "code": totp_code(device)},
    )
    assert done.status_code == 302
    assert done["Location"] == "/rooms/"
    assert len(events("auth.login.succeeded")) == 1


def assert_provider_mfa_session(client: Client, response: Any, user: User) -> ProviderMfaDevice:
    """``user``'s session is verified, recorded as the provider's multi-factor sign-in;
    returns that record."""
    assert response.status_code == 302
    assert response["Location"] == "/rooms/"
    device: ProviderMfaDevice = ProviderMfaDevice.objects.get(user=user)
    row = UserSession.objects.get(user=user)
    assert row.device_id == device.persistent_id
    assert row.verified_at is not None
    assert client.get("/accounts/factors/").status_code == 200
    (succeeded,) = events("auth.login.succeeded")
    assert succeeded.extra["factor"] == "provider_mfa"
    return device
