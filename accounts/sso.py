"""Federated sign-in: the configured identity providers and the policy applied to what they
assert. Pure: no Django models, no network (settings import it; docs/sso.md).

``SAFECHAT_OIDC_PROVIDERS`` is a JSON list of OpenID Connect providers; each becomes an
:class:`OidcProvider`. A configuration that cannot be safe (no ``openid`` scope, an
``alg`` of ``none`` or a symmetric one, an issuer over plain HTTP in production, two
providers with one key) refuses to start rather than signing anyone in wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# A provider's key names it in URLs (/accounts/sso/<key>/...) and in the audit log.
PROVIDER_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# Asymmetric signatures only: an ``HS*`` ID token is signed with the client secret, which
# would let anyone holding it (the provider's other clients' operators, a leak) mint one,
# and accepting ``HS*`` next to ``RS*`` is the classic key-confusion hole. ``none`` is no
# signature at all.
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256")
TOKEN_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "none"})
# RFC 8176: "mfa" is the value a provider sends when several factors were used.
DEFAULT_MFA_AMR = ("mfa",)
DISCOVERY_PATH = "/.well-known/openid-configuration"
SECRET_VARIABLE_PREFIX = "SAFECHAT_OIDC_CLIENT_SECRET_"  # noqa: S105 - a variable's name
_FIELDS = frozenset(
    {
        "key", "name", "issuer", "client_id", "client_secret", "discovery_url", "scopes",
        "algorithms", "token_auth_method", "trust_mfa", "mfa_amr", "mfa_acr", "acr_values",
        "create_accounts", "username_claim",
    }
)  # fmt: skip
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SsoConfigurationError(ValueError):
    """``SAFECHAT_OIDC_PROVIDERS`` cannot be used as given; the message says why."""


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID Connect provider SafeChat accepts sign-ins from.

    ``issuer`` is compared exactly with the discovery document's ``issuer`` and with every
    ID token's ``iss`` (OpenID Connect Discovery 1.0, section 4.3; Core 1.0, 3.1.3.7).
    """

    key: str
    name: str
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    discovery_url: str = ""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    token_auth_method: str = "client_secret_basic"  # noqa: S105 - a method's name
    trust_mfa: bool = False
    mfa_amr: tuple[str, ...] = DEFAULT_MFA_AMR
    mfa_acr: tuple[str, ...] = ()
    acr_values: str = ""
    create_accounts: bool = False
    username_claim: str = "preferred_username"

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + DISCOVERY_PATH


@dataclass(frozen=True)
class AssertedIdentity:
    """What a provider asserted about the person, after every protocol check passed.

    ``issuer`` and ``subject`` name the person for good (the link to an account);
    everything else is information, never a way to find an account.
    """

    provider: OidcProvider
    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    amr: tuple[str, ...] = ()
    acr: str = ""


def provider_asserts_mfa(identity: AssertedIdentity) -> bool:
    """Whether this sign-in counts as SafeChat's second factor: only for a provider
    configured ``trust_mfa``, and only when its ID token says several factors were used
    (an ``amr`` value in ``mfa_amr``, or an ``acr`` in ``mfa_acr``). Anything else leaves
    the session password-equivalent."""
    provider = identity.provider
    if not provider.trust_mfa:
        return False
    if any(value in provider.mfa_amr for value in identity.amr):
        return True
    return bool(identity.acr) and identity.acr in provider.mfa_acr


def provider_named(providers: Iterable[OidcProvider], key: str) -> OidcProvider | None:
    """The provider of ``providers`` whose key is ``key``, or None."""
    return next((p for p in providers if p.key == key), None)


def _strings(value: object, *, name: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SsoConfigurationError(f"provider {key!r}: {name} must be a list of strings")
    return tuple(value)


def _text(entry: Mapping[str, Any], name: str, *, key: str, default: str | None = None) -> str:
    value = entry.get(name, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise SsoConfigurationError(f"provider {key!r}: {name} must be a non-empty string")
    return value.strip()


def _flag(entry: Mapping[str, Any], name: str, *, key: str) -> bool:
    value = entry.get(name, False)
    if not isinstance(value, bool):
        raise SsoConfigurationError(f"provider {key!r}: {name} must be true or false")
    return value


def _check_url(url: str, *, name: str, key: str, production: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise SsoConfigurationError(f"provider {key!r}: {name} must be an absolute URL")
    if parts.query or parts.fragment:
        raise SsoConfigurationError(f"provider {key!r}: {name} has a query or fragment")
    # Plain HTTP only to a provider on this machine, and never in production: the
    # discovery document and the keys decide whose signatures are believed.
    if parts.scheme == "http" and (production or parts.hostname not in _LOOPBACK_HOSTS):
        raise SsoConfigurationError(f"provider {key!r}: {name} must use https")


def _provider(entry: object, *, environ: Mapping[str, str], production: bool) -> OidcProvider:
    if not isinstance(entry, dict):
        raise SsoConfigurationError("each provider must be a JSON object")
    key = entry.get("key")
    if not isinstance(key, str) or not PROVIDER_KEY.match(key):
        raise SsoConfigurationError(
            "each provider needs a key: 1 to 32 lower-case letters, digits or hyphens"
        )
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise SsoConfigurationError(f"provider {key!r}: unknown field(s) {', '.join(unknown)}")
    issuer = _text(entry, "issuer", key=key)
    _check_url(issuer, name="issuer", key=key, production=production)
    discovery_url = _text(entry, "discovery_url", key=key, default="")
    if discovery_url:
        _check_url(discovery_url, name="discovery_url", key=key, production=production)
    scopes = _strings(entry.get("scopes", ["openid", "email", "profile"]), name="scopes", key=key)
    if "openid" not in scopes:
        raise SsoConfigurationError(f"provider {key!r}: scopes must include openid")
    algorithms = _strings(
        entry.get("algorithms", list(DEFAULT_ALGORITHMS)), name="algorithms", key=key
    )
    refused = sorted(set(algorithms) - ALLOWED_ALGORITHMS)
    if refused:
        raise SsoConfigurationError(
            f"provider {key!r}: algorithm(s) {', '.join(refused)} refused; "
            f"use asymmetric ones ({', '.join(sorted(ALLOWED_ALGORITHMS))})"
        )
    method = _text(entry, "token_auth_method", key=key, default="client_secret_basic")
    if method not in TOKEN_AUTH_METHODS:
        raise SsoConfigurationError(
            f"provider {key!r}: token_auth_method must be one of {sorted(TOKEN_AUTH_METHODS)}"
        )
    variable = SECRET_VARIABLE_PREFIX + key.upper().replace("-", "_")
    secret = environ.get(variable) or _text(entry, "client_secret", key=key, default="")
    if method != "none" and not secret:
        raise SsoConfigurationError(
            f"provider {key!r}: a client secret is needed (set {variable}) unless "
            "token_auth_method is none"
        )
    return OidcProvider(
        key=key,
        name=_text(entry, "name", key=key, default=key)[:64] or key,
        issuer=issuer,
        client_id=_text(entry, "client_id", key=key),
        client_secret=secret,
        discovery_url=discovery_url,
        scopes=scopes,
        algorithms=algorithms,
        token_auth_method=method,
        trust_mfa=_flag(entry, "trust_mfa", key=key),
        mfa_amr=_strings(entry.get("mfa_amr", list(DEFAULT_MFA_AMR)), name="mfa_amr", key=key),
        mfa_acr=_strings(entry.get("mfa_acr", []), name="mfa_acr", key=key),
        acr_values=_text(entry, "acr_values", key=key, default=""),
        create_accounts=_flag(entry, "create_accounts", key=key),
        username_claim=_text(entry, "username_claim", key=key, default="preferred_username"),
    )


def oidc_providers_parse(
    raw: str, *, environ: Mapping[str, str], production: bool
) -> tuple[OidcProvider, ...]:
    """The providers of ``SAFECHAT_OIDC_PROVIDERS`` (a JSON list; empty or unset: none).

    A provider's client secret comes from ``SAFECHAT_OIDC_CLIENT_SECRET_<KEY>`` (the key
    upper-cased, hyphens as underscores) or, failing that, its ``client_secret`` field.
    Raises :class:`SsoConfigurationError` for anything that is not a safe configuration.
    """
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise SsoConfigurationError(f"SAFECHAT_OIDC_PROVIDERS is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise SsoConfigurationError("SAFECHAT_OIDC_PROVIDERS must be a JSON list")
    providers = [_provider(e, environ=environ, production=production) for e in entries]
    _unique(p.key for p in providers)
    return tuple(providers)


def _unique(keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise SsoConfigurationError(f"two providers have the key {key!r}")
        seen.add(key)
