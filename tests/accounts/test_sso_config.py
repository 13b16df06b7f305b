"""SAFECHAT_OIDC_PROVIDERS: what is accepted, and every unsafe configuration refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.sso import (
    AssertedIdentity,
    OidcProvider,
    SsoConfigurationError,
    oidc_providers_parse,
    provider_asserts_mfa,
)

ENTRY = {
    "key": "corp",
    "name": "Corporate sign-in",
    "issuer": "https://login.bank.example/realms/staff",
    "client_id": "safechat",
    "client_secret": "from-the-json",
}


def parse(*entries: dict[str, Any], production: bool = False, **environ: str) -> Any:
    return oidc_providers_parse(json.dumps(list(entries)), environ=environ, production=production)


def test_unset_means_no_provider() -> None:
    assert oidc_providers_parse("", environ={}, production=True) == ()


def test_a_provider_with_safe_defaults() -> None:
    # when one provider is configured with only what it needs
    (provider,) = parse(ENTRY, production=True)

    # then discovery is at the issuer, signatures asymmetric, nothing trusted or created
    assert provider.metadata_url == (
        "https://login.bank.example/realms/staff/.well-known/openid-configuration"
    )
    assert provider.algorithms == ("RS256", "PS256", "ES256")
    assert provider.scopes == ("openid", "email", "profile")
    assert provider.trust_mfa is False
    assert provider.create_accounts is False
    assert provider.username_claim == "preferred_username"
    # and the secret never shows in its repr (error pages, logs)
    assert "from-the-json" not in repr(provider)


def test_the_client_secret_can_come_from_its_own_variable() -> None:
    entry = {k: v for k, v in ENTRY.items() if k != "client_secret"}
    (provider,) = parse(entry, SAFECHAT_OIDC_CLIENT_SECRET_CORP="from-the-environment")
    assert provider.client_secret == "from-the-environment"


@pytest.mark.parametrize(
    ("change", "production", "complaint"),
    [
        ({"algorithms": ["RS256", "none"]}, False, "none"),
        ({"algorithms": ["HS256"]}, False, "HS256"),
        ({"scopes": ["email"]}, False, "openid"),
        ({"issuer": "http://login.bank.example"}, False, "https"),
        ({"issuer": "http://127.0.0.1:8080/o"}, True, "https"),
        ({"issuer": "login.bank.example"}, False, "absolute URL"),
        ({"key": "Corp Login"}, False, "key"),
        ({"client_secret": ""}, False, "client secret"),
        ({"trust_mfa": "yes"}, False, "true or false"),
        ({"surprise": 1}, False, "unknown field"),
        ({"token_auth_method": "private_key_jwt"}, False, "token_auth_method"),
    ],
)
def test_an_unsafe_or_unclear_configuration_refuses_to_start(
    change: dict[str, Any], production: bool, complaint: str
) -> None:
    with pytest.raises(SsoConfigurationError, match=complaint):
        parse({**ENTRY, **change}, production=production)


def test_two_providers_with_one_key_are_refused() -> None:
    with pytest.raises(SsoConfigurationError, match="two providers"):
        parse(ENTRY, ENTRY)


def test_not_json_is_refused() -> None:
    with pytest.raises(SsoConfigurationError, match="JSON"):
        oidc_providers_parse("{not json", environ={}, production=False)


def test_loopback_http_is_accepted_in_development_only() -> None:
    (provider,) = parse({**ENTRY, "issuer": "http://127.0.0.1:8080/o"})
    assert provider.issuer == "http://127.0.0.1:8080/o"


@pytest.mark.parametrize(
    ("trust", "amr", "acr", "expected"),
    [
        (False, ("pwd", "mfa"), "", False),
        (True, ("pwd", "mfa"), "", True),
        (True, ("pwd",), "", False),
        (True, (), "urn:loa:3", True),
        (True, (), "urn:loa:1", False),
    ],
)
def test_provider_mfa_counts_only_for_a_trusted_provider_that_asserts_it(
    trust: bool, amr: tuple[str, ...], acr: str, expected: bool
) -> None:
    provider = OidcProvider(
        key="corp", name="c", issuer="https://i", client_id="c", trust_mfa=trust,
        mfa_acr=("urn:loa:3",),
    )  # fmt: skip
    identity = AssertedIdentity(
        provider=provider, issuer="https://i", subject="s", amr=amr, acr=acr
    )
    assert provider_asserts_mfa(identity) is expected
