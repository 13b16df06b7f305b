"""SAFECHAT_OIDC_PROVIDERS and SAFECHAT_SAML_IDPS (with SafeChat's own SAML side): what is
accepted, and every unsafe configuration refused."""

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
    providers_distinct,
    saml_identity_providers_parse,
    saml_service_provider_parse,
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


# --- SAML 2.0: SAFECHAT_SAML_IDPS and SafeChat's own side ----------------------------------


@pytest.fixture(scope="module")
def saml_keys() -> dict[str, tuple[str, str]]:
    from tests.support.saml import key_and_certificate

    return {name: key_and_certificate(name) for name in ("idp", "sp", "other")}


def saml_entry(cert: str, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": "adfs",
        "name": "Bank ADFS",
        "entity_id": "http://adfs.bank.example/adfs/services/trust",
        "sso_url": "https://adfs.bank.example/adfs/ls/",
        "certificate": cert,
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


def saml_parse(*entries: dict[str, Any], production: bool = False) -> Any:
    return saml_identity_providers_parse(json.dumps(list(entries)), production=production)


def test_unset_means_no_saml_idp() -> None:
    assert saml_identity_providers_parse("", production=True) == ()


def test_a_saml_idp_with_safe_defaults(saml_keys: dict[str, tuple[str, str]]) -> None:
    # given the certificate as an admin console shows it: the bare base64 of its DER
    cert = saml_keys["idp"][1]
    bare = "".join(line for line in cert.splitlines() if not line.startswith("-----"))

    # when the IdP is configured with only what it needs
    (idp,) = saml_parse(saml_entry(bare), production=True)

    # then it is keyed by its entity ID, untrusted for MFA, and creates no account
    assert idp.issuer == "http://adfs.bank.example/adfs/services/trust"
    assert idp.certificates == (cert,)
    assert idp.trust_mfa is False
    assert idp.create_accounts is False
    assert "https://refeds.org/profile/mfa" in idp.mfa_authn_contexts


@pytest.mark.parametrize(
    ("changes", "production", "complaint"),
    [
        ({"certificate": None}, False, "signing certificate is needed"),
        ({"certificate": "not a certificate"}, False, "does not parse"),
        ({"sso_url": "http://adfs.bank.example/adfs/ls/"}, False, "must use https"),
        ({"sso_url": "http://127.0.0.1:9000/sso"}, True, "must use https"),
        ({"slo_url": "http://adfs.bank.example/adfs/ls/"}, False, "must use https"),
        ({"entity_id": ""}, False, "entity_id must be"),
        ({"key": "Not A Key"}, False, "needs a key"),
        ({"trust_mfa": "yes"}, False, "true or false"),
        ({"mfa_authn_context": ["x"]}, False, "unknown field"),
        ({"certificate_file": "/nonexistent/idp.pem", "certificate": None}, False, "cannot read"),
    ],
)
def test_an_unsafe_or_unclear_saml_configuration_refuses_to_start(
    saml_keys: dict[str, tuple[str, str]],
    changes: dict[str, Any],
    production: bool,
    complaint: str,
) -> None:
    entry = saml_entry(saml_keys["idp"][1], **changes)
    with pytest.raises(SsoConfigurationError, match=complaint):
        saml_parse(entry, production=production)


def test_two_saml_idps_with_one_key_or_entity_id_are_refused(
    saml_keys: dict[str, tuple[str, str]],
) -> None:
    cert = saml_keys["idp"][1]
    with pytest.raises(SsoConfigurationError, match="key"):
        saml_parse(saml_entry(cert), saml_entry(cert, entity_id="urn:other"))
    with pytest.raises(SsoConfigurationError, match="entity_id"):
        saml_parse(saml_entry(cert), saml_entry(cert, key="other"))


def test_an_oidc_provider_and_a_saml_idp_cannot_share_a_key(
    saml_keys: dict[str, tuple[str, str]],
) -> None:
    (idp,) = saml_parse(saml_entry(saml_keys["idp"][1], key="corp"))
    (provider,) = parse(ENTRY)
    with pytest.raises(SsoConfigurationError, match="key"):
        providers_distinct([provider], [idp])


def sp_environ(saml_keys: dict[str, tuple[str, str]], **changes: str) -> dict[str, str]:
    key, cert = saml_keys["sp"]
    environ = {
        "SAFECHAT_SAML_SP_BASE_URL": "https://chat.bank.example",
        "SAFECHAT_SAML_SP_KEY": key.replace("\n", "\\n"),  # one line, as in an env file
        "SAFECHAT_SAML_SP_CERT": cert,
    }
    environ.update(changes)
    return {k: v for k, v in environ.items() if v}


def test_safechats_saml_side_from_the_environment(saml_keys: dict[str, tuple[str, str]]) -> None:
    sp = saml_service_provider_parse(
        environ=sp_environ(saml_keys), production=True, default_base_url=""
    )
    assert sp.entity_id == "https://chat.bank.example/accounts/saml/metadata/"
    assert sp.acs_url("adfs") == "https://chat.bank.example/accounts/saml/adfs/acs/"
    assert sp.certificate_pem == saml_keys["sp"][1]
    assert "PRIVATE KEY" not in repr(sp)


def test_safechats_saml_key_and_certificate_can_come_from_files(
    saml_keys: dict[str, tuple[str, str]], tmp_path: Any
) -> None:
    (tmp_path / "sp.key").write_text(saml_keys["sp"][0])
    (tmp_path / "sp.crt").write_text(saml_keys["sp"][1])
    environ = sp_environ(
        saml_keys,
        SAFECHAT_SAML_SP_KEY="",
        SAFECHAT_SAML_SP_CERT="",
        SAFECHAT_SAML_SP_KEY_FILE=str(tmp_path / "sp.key"),
        SAFECHAT_SAML_SP_CERT_FILE=str(tmp_path / "sp.crt"),
    )
    sp = saml_service_provider_parse(environ=environ, production=True, default_base_url="")
    assert sp.certificate_pem == saml_keys["sp"][1]


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"SAFECHAT_SAML_SP_KEY": ""}, "key and certificate are needed"),
        ({"SAFECHAT_SAML_SP_BASE_URL": ""}, "must be an absolute URL"),
        ({"SAFECHAT_SAML_SP_BASE_URL": "http://chat.bank.example"}, "must use https"),
        ({"SAFECHAT_SAML_SP_BASE_URL": "https://chat.bank.example/chat"}, "must be an origin"),
        ({"SAFECHAT_SAML_SP_KEY": "not a key"}, "not an unencrypted PEM key"),
        ({"SAFECHAT_SAML_SP_CERT": "not a certificate"}, "not a PEM certificate"),
    ],
)
def test_an_unsafe_saml_side_refuses_to_start_in_production(
    saml_keys: dict[str, tuple[str, str]], changes: dict[str, str], complaint: str
) -> None:
    with pytest.raises(SsoConfigurationError, match=complaint):
        saml_service_provider_parse(
            environ=sp_environ(saml_keys, **changes), production=True, default_base_url=""
        )


def test_a_saml_key_that_does_not_match_its_certificate_is_refused(
    saml_keys: dict[str, tuple[str, str]],
) -> None:
    environ = sp_environ(saml_keys, SAFECHAT_SAML_SP_CERT=saml_keys["other"][1])
    with pytest.raises(SsoConfigurationError, match="does not match"):
        saml_service_provider_parse(environ=environ, production=True, default_base_url="")


def test_a_short_saml_key_is_refused() -> None:
    from tests.support.saml import key_and_certificate

    key, cert = key_and_certificate("short", bits=1024)
    environ = {
        "SAFECHAT_SAML_SP_BASE_URL": "https://chat.bank.example",
        "SAFECHAT_SAML_SP_KEY": key,
        "SAFECHAT_SAML_SP_CERT": cert,
    }
    with pytest.raises(SsoConfigurationError, match="at least 2048"):
        saml_service_provider_parse(environ=environ, production=True, default_base_url="")


@pytest.mark.parametrize(
    ("contexts", "trust", "expected"),
    [
        (("https://refeds.org/profile/mfa",), True, True),
        (("https://refeds.org/profile/mfa",), False, False),
        (("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",), True, False),
        ((), True, False),
    ],
)
def test_saml_mfa_counts_only_for_a_trusted_idp_whose_context_says_so(
    saml_keys: dict[str, tuple[str, str]], contexts: tuple[str, ...], trust: bool, expected: bool
) -> None:
    (idp,) = saml_parse(saml_entry(saml_keys["idp"][1], trust_mfa=trust))
    identity = AssertedIdentity(
        provider=idp, issuer=idp.issuer, subject="s", authn_contexts=contexts
    )
    assert provider_asserts_mfa(identity) is expected


def test_a_role_map_naming_an_unknown_role_or_a_group_map_naming_a_role_refuses_to_start() -> None:
    from accounts.sso import SsoConfigurationError, oidc_providers_parse

    base = {"key": "corp", "issuer": "https://login.bank.example", "client_id": "c",
            "client_secret": "s"}  # fmt: skip
    with pytest.raises(SsoConfigurationError, match="unknown role"):
        oidc_providers_parse(
            json.dumps([{**base, "role_map": {"cn=x": "superuser"}}]), environ={}, production=False
        )
    with pytest.raises(SsoConfigurationError, match="names a role"):
        oidc_providers_parse(
            json.dumps([{**base, "barrier_group_map": {"cn=x": "security_admin"}}]),
            environ={}, production=False,
        )  # fmt: skip
    [provider] = oidc_providers_parse(
        json.dumps([{**base, "groups_claim": "roles", "role_map": {"cn=x": "room_admin"}}]),
        environ={}, production=False,
    )  # fmt: skip
    assert provider.groups_claim == "roles"
    assert provider.role_map == (("cn=x", "room_admin"),)
