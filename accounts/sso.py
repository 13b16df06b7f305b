"""Federated sign-in: the configured identity providers and the policy applied to what they
assert. Pure: no Django models, no network (settings import it; docs/sso.md).

``SAFECHAT_OIDC_PROVIDERS`` is a JSON list of OpenID Connect providers; each becomes an
:class:`OidcProvider`. ``SAFECHAT_SAML_IDPS`` is a JSON list of SAML 2.0 identity
providers; each becomes a :class:`SamlIdentityProvider`, and SafeChat's own side of SAML
(entity ID, where it is served, its signing key) a :class:`SamlServiceProvider`. A
configuration that cannot be safe (no ``openid`` scope, an ``alg`` of ``none`` or a
symmetric one, an issuer or SSO URL over plain HTTP in production, an IdP certificate
that does not parse, an SP key that does not match its certificate, two providers with
one key) refuses to start rather than signing anyone in wrongly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
        "create_accounts", "username_claim", "groups_claim", "role_map", "barrier_group_map",
    }
)  # fmt: skip
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SsoConfigurationError(ValueError):
    """The identity providers' configuration cannot be used as given; the message says why."""


class FederatedRefused(Exception):
    """A sign-in through a provider that failed a protocol check; ``reason`` is a key of the
    protocol's ``REASONS`` (its class attribute), the ``reason`` of ``auth.federated.refused``.

    ``detail`` is for the audit log only (the check that failed, the provider's status):
    never shown, never a token, an assertion or a secret. ``status`` is the HTTP answer.
    """

    REASONS: ClassVar[Mapping[str, str]] = {}
    FALLBACK: ClassVar[str] = "The identity provider's answer was not accepted."

    def __init__(self, reason: str, *, detail: str = "", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail[:200]
        self.status = status

    @property
    def message(self) -> str:
        return self.REASONS.get(self.reason, self.FALLBACK)


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID Connect provider SafeChat accepts sign-ins from.

    ``issuer`` is compared exactly with the discovery document's ``issuer`` and with every
    ID token's ``iss`` (OpenID Connect Discovery 1.0, section 4.3; Core 1.0, 3.1.3.7).
    """

    protocol: ClassVar[str] = "oidc"
    start_route: ClassVar[str] = "accounts:sso-start"

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
    # Role and information-barrier group mapping (docs/sso.md "Roles and groups from the
    # provider"): the claim that lists the person's groups at the provider, and what each
    # of its values means here.
    groups_claim: str = "groups"
    role_map: tuple[tuple[str, str], ...] = ()
    barrier_group_map: tuple[tuple[str, str], ...] = ()

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + DISCOVERY_PATH


# SAML 2.0 authentication context classes that mean several factors were used: REFEDS MFA,
# and the class Microsoft's ADFS and Entra ID send for a multi-factor sign-in.
DEFAULT_MFA_AUTHN_CONTEXTS = (
    "https://refeds.org/profile/mfa",
    "http://schemas.microsoft.com/claims/multipleauthn",
)
# The SAML attribute names a person's details are read from, first match wins: the plain
# names most IdPs send, the LDAP/eduPerson OIDs (SAML V2.0 X.500/LDAP profile) and the
# claim URIs of ADFS and Entra ID. Never a way to find an account.
DEFAULT_SAML_ATTRIBUTES = {
    "username_attribute": (
        "username", "uid", "urn:oid:0.9.2342.19200300.100.1.1",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    ),
    "email_attribute": (
        "email", "mail", "urn:oid:0.9.2342.19200300.100.1.3",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    ),
    "first_name_attribute": (
        "givenName", "firstName", "urn:oid:2.5.4.42",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    ),
    "last_name_attribute": (
        "sn", "surname", "lastName", "urn:oid:2.5.4.4",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    ),
}  # fmt: skip
# Where an IdP lists a person's groups: the plain names, and the claim URI of ADFS and
# Entra ID (object ids there, or names where the IdP is set to send them).
DEFAULT_SAML_GROUPS_ATTRIBUTES = (
    "groups", "memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
)  # fmt: skip
# SafeChat's roles by value (accounts.roles.Role; this module imports nothing of Django).
ROLE_VALUES = frozenset({"member", "room_admin", "compliance_officer", "security_admin"})
GROUPS_MAX = 200  # values of a groups claim or attribute read, at most
_SAML_FIELDS = frozenset(
    {
        "key", "name", "entity_id", "sso_url", "slo_url", "certificate", "certificate_file",
        "trust_mfa",
        "mfa_authn_contexts", "requested_authn_contexts", "create_accounts",
        "groups_attribute", "role_map", "barrier_group_map",
        *DEFAULT_SAML_ATTRIBUTES,
    }
)  # fmt: skip
SAML_SP_PATH = "/accounts/saml/metadata/"
SP_KEY_MIN_BITS = 2048


@dataclass(frozen=True)
class SamlIdentityProvider:
    """One SAML 2.0 identity provider SafeChat accepts sign-ins from (SP-initiated Web SSO).

    ``entity_id`` is compared exactly with the ``Issuer`` of its responses and assertions;
    ``certificates`` (PEM) are the only keys its signatures are checked with (never a key
    the message carries). ``issuer`` is the entity ID, the half of a link that names the
    provider (the other is the persistent NameID).
    """

    protocol: ClassVar[str] = "saml"
    start_route: ClassVar[str] = "accounts:saml-start"

    key: str
    name: str
    entity_id: str
    sso_url: str
    certificates: tuple[str, ...]
    # Its single logout service (HTTP-Redirect), where SafeChat answers its logout
    # requests; unset, SafeChat takes none from it.
    slo_url: str = ""
    trust_mfa: bool = False
    mfa_authn_contexts: tuple[str, ...] = DEFAULT_MFA_AUTHN_CONTEXTS
    requested_authn_contexts: tuple[str, ...] = ()
    create_accounts: bool = False
    username_attribute: tuple[str, ...] = DEFAULT_SAML_ATTRIBUTES["username_attribute"]
    email_attribute: tuple[str, ...] = DEFAULT_SAML_ATTRIBUTES["email_attribute"]
    first_name_attribute: tuple[str, ...] = DEFAULT_SAML_ATTRIBUTES["first_name_attribute"]
    last_name_attribute: tuple[str, ...] = DEFAULT_SAML_ATTRIBUTES["last_name_attribute"]
    groups_attribute: tuple[str, ...] = DEFAULT_SAML_GROUPS_ATTRIBUTES
    role_map: tuple[tuple[str, str], ...] = ()
    barrier_group_map: tuple[tuple[str, str], ...] = ()

    @property
    def issuer(self) -> str:
        return self.entity_id


@dataclass(frozen=True)
class SamlServiceProvider:
    """SafeChat as a SAML service provider: its entity ID, the origin it is served from
    (``base_url``, from which each IdP's assertion consumer service URL is made, the one
    ``Destination`` and ``Recipient`` must name) and the key its requests are signed with."""

    entity_id: str
    base_url: str
    private_key_pem: str = field(repr=False)
    certificate_pem: str

    def acs_url(self, provider_key: str) -> str:
        """Where the IdP ``provider_key`` posts its responses (HTTP-POST binding)."""
        return f"{self.base_url}/accounts/saml/{provider_key}/acs/"

    def slo_url(self, provider_key: str) -> str:
        """Where the IdP ``provider_key`` sends its logout requests (HTTP-Redirect)."""
        return f"{self.base_url}/accounts/saml/{provider_key}/slo/"


FederatedProvider = OidcProvider | SamlIdentityProvider
ProviderT = TypeVar("ProviderT", OidcProvider, SamlIdentityProvider)


@dataclass(frozen=True)
class OneTimeAssertion:
    """What makes an assertion usable once: its ID at its issuer, the request it answers,
    and until when it would be accepted (it is remembered at least that long)."""

    assertion_id: str
    request_id: str
    valid_until: datetime


@dataclass(frozen=True)
class AssertedIdentity:
    """What a provider asserted about the person, after every protocol check passed.

    ``issuer`` and ``subject`` name the person for good (the link to an account: OIDC
    ``iss`` and ``sub``, SAML IdP entity ID and persistent NameID); everything else is
    information, never a way to find an account. ``amr``/``acr`` (OIDC) and
    ``authn_contexts`` (SAML ``AuthnContextClassRef``) say how the person signed in there;
    ``one_time`` is set where the protocol's message must be used at most once;
    ``session_index`` is the provider's name for its session (SAML ``SessionIndex``, OIDC
    ``sid``), by which its logout names the sessions to end.
    """

    provider: FederatedProvider
    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    amr: tuple[str, ...] = ()
    acr: str = ""
    authn_contexts: tuple[str, ...] = ()
    one_time: OneTimeAssertion | None = None
    session_index: str = ""
    groups: tuple[str, ...] = ()
    # The ID token as received (OIDC), kept in the session only as the ``id_token_hint`` of
    # a logout SafeChat starts (RP-Initiated Logout 1.0); never logged or audited.
    id_token: str = field(default="", repr=False)


def provider_asserts_mfa(identity: AssertedIdentity) -> bool:
    """Whether this sign-in counts as SafeChat's second factor: only for a provider
    configured ``trust_mfa``, and only when it says several factors were used (OIDC: an
    ``amr`` value in ``mfa_amr``, or an ``acr`` in ``mfa_acr``; SAML: an
    ``AuthnContextClassRef`` in ``mfa_authn_contexts``). Anything else leaves the session
    password-equivalent."""
    provider = identity.provider
    if not provider.trust_mfa:
        return False
    if isinstance(provider, SamlIdentityProvider):
        return any(value in provider.mfa_authn_contexts for value in identity.authn_contexts)
    if any(value in provider.mfa_amr for value in identity.amr):
        return True
    return bool(identity.acr) and identity.acr in provider.mfa_acr


def sign_in_evidence(identity: AssertedIdentity) -> dict[str, object]:
    """How the provider says the person signed in, for the audit log: OIDC ``amr`` and
    ``acr``, SAML ``authn_context`` (the ``AuthnContextClassRef`` values)."""
    if isinstance(identity.provider, SamlIdentityProvider):
        return {"authn_context": list(identity.authn_contexts)}
    return {"amr": list(identity.amr), "acr": identity.acr}


def provider_named(providers: Iterable[ProviderT], key: str) -> ProviderT | None:
    """The provider of ``providers`` whose key is ``key``, or None."""
    return next((p for p in providers if p.key == key), None)


@dataclass(frozen=True)
class MappedAccess:
    """What a provider's groups mean here: the roles and information-barrier groups the
    person should hold (``roles``, ``groups``) among those the provider's mapping manages
    (``managed_roles``, ``managed_groups``: every value of its ``role_map`` and
    ``barrier_group_map``). Roles and groups outside the managed ones are never touched."""

    roles: frozenset[str]
    groups: frozenset[str]
    managed_roles: frozenset[str]
    managed_groups: frozenset[str]

    @property
    def configured(self) -> bool:
        return bool(self.managed_roles or self.managed_groups)


def mapped_access(identity: AssertedIdentity) -> MappedAccess:
    """The roles and barrier groups ``identity``'s groups map to (exact, case-sensitive
    comparison of each asserted group with the keys of ``role_map`` and
    ``barrier_group_map``).

    >>> p = OidcProvider(key="k", name="k", issuer="https://i", client_id="c",
    ...     role_map=(("g-admins", "room_admin"),), barrier_group_map=(("g-ib", "Research"),))
    >>> a = mapped_access(AssertedIdentity(provider=p, issuer="https://i", subject="s",
    ...     groups=("g-ib", "other")))
    >>> sorted(a.roles), sorted(a.groups), sorted(a.managed_roles)
    ([], ['Research'], ['room_admin'])
    """
    return groups_mapped(identity.provider, identity.groups)


def groups_mapped(provider: FederatedProvider, values: Iterable[str]) -> MappedAccess:
    """The roles and barrier groups the group ``values`` map to under ``provider``'s
    ``role_map`` and ``barrier_group_map`` (exact, case-sensitive comparison): the one
    mapping of a sign-in's asserted groups and of a person's SCIM groups (each by its
    ``displayName`` and its ``externalId``)."""
    asserted = set(values)
    return MappedAccess(
        roles=frozenset(role for value, role in provider.role_map if value in asserted),
        groups=frozenset(group for value, group in provider.barrier_group_map if value in asserted),
        managed_roles=frozenset(role for _, role in provider.role_map),
        managed_groups=frozenset(group for _, group in provider.barrier_group_map),
    )


def _mapping(entry: Mapping[str, Any], name: str, *, key: str) -> tuple[tuple[str, str], ...]:
    """``role_map`` or ``barrier_group_map``: a JSON object from the provider's group
    values to a role (one of ``ROLE_VALUES``) or a SafeChat group's name (not a role's)."""
    value = entry.get(name, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v.strip() for k, v in value.items()
    ):
        raise SsoConfigurationError(f"provider {key!r}: {name} must map strings to strings")
    pairs = tuple((k, v.strip()) for k, v in value.items())
    if name == "role_map":
        unknown = sorted({v for _, v in pairs} - ROLE_VALUES)
        if unknown:
            raise SsoConfigurationError(
                f"provider {key!r}: role_map names unknown role(s) {', '.join(unknown)}; "
                f"roles are {', '.join(sorted(ROLE_VALUES))}"
            )
    elif any(v in ROLE_VALUES for _, v in pairs):
        raise SsoConfigurationError(
            f"provider {key!r}: barrier_group_map names a role; roles go in role_map"
        )
    return pairs


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


def _json_list(raw: str, *, setting: str) -> list[object]:
    """The JSON list ``setting`` holds (empty or blank: none)."""
    if not raw.strip():
        return []
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise SsoConfigurationError(f"{setting} is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise SsoConfigurationError(f"{setting} must be a JSON list")
    return entries


def _entry_and_key(
    entry: object, *, what: str, fields: frozenset[str]
) -> tuple[dict[str, Any], str]:
    """One provider's JSON object and its key, once it names no field outside ``fields``."""
    if not isinstance(entry, dict):
        raise SsoConfigurationError(f"each {what} must be a JSON object")
    key = entry.get("key")
    if not isinstance(key, str) or not PROVIDER_KEY.match(key):
        raise SsoConfigurationError(
            f"each {what} needs a key: 1 to 32 lower-case letters, digits or hyphens"
        )
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise SsoConfigurationError(f"provider {key!r}: unknown field(s) {', '.join(unknown)}")
    return entry, key


def _provider(entry: object, *, environ: Mapping[str, str], production: bool) -> OidcProvider:
    entry, key = _entry_and_key(entry, what="provider", fields=_FIELDS)
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
        groups_claim=_text(entry, "groups_claim", key=key, default="groups") or "groups",
        role_map=_mapping(entry, "role_map", key=key),
        barrier_group_map=_mapping(entry, "barrier_group_map", key=key),
    )


def oidc_providers_parse(
    raw: str, *, environ: Mapping[str, str], production: bool
) -> tuple[OidcProvider, ...]:
    """The providers of ``SAFECHAT_OIDC_PROVIDERS`` (a JSON list; empty or unset: none).

    A provider's client secret comes from ``SAFECHAT_OIDC_CLIENT_SECRET_<KEY>`` (the key
    upper-cased, hyphens as underscores) or, failing that, its ``client_secret`` field.
    Raises :class:`SsoConfigurationError` for anything that is not a safe configuration.
    """
    entries = _json_list(raw, setting="SAFECHAT_OIDC_PROVIDERS")
    providers = [_provider(e, environ=environ, production=production) for e in entries]
    _unique(p.key for p in providers)
    return tuple(providers)


def _unique(keys: Iterable[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise SsoConfigurationError(f"two providers have the key {key!r}")
        seen.add(key)


def providers_distinct(oidc: Iterable[OidcProvider], saml: Iterable[SamlIdentityProvider]) -> None:
    """Raise :class:`SsoConfigurationError` if an OpenID Connect provider and a SAML IdP
    share a key (a link names its provider by key) or an issuer (a link's half)."""
    oidc, saml = list(oidc), list(saml)
    _unique([*(p.key for p in oidc), *(p.key for p in saml)])
    issuers = {p.issuer for p in oidc}
    for idp in saml:
        if idp.issuer in issuers:
            raise SsoConfigurationError(f"provider {idp.key!r}: its entity ID is another's")
        issuers.add(idp.issuer)


def scim_groups_provider_parse(
    key: str, oidc: Iterable[OidcProvider], saml: Iterable[SamlIdentityProvider]
) -> str:
    """``SAFECHAT_SCIM_GROUPS_PROVIDER``: the key of the configured provider whose
    ``role_map`` and ``barrier_group_map`` SCIM groups are mapped by, or "" (SCIM groups
    are kept and map nothing). Raises :class:`SsoConfigurationError` for a key no
    provider has."""
    key = key.strip()
    keys = {p.key for p in oidc} | {p.key for p in saml}
    if key and key not in keys:
        raise SsoConfigurationError(
            f"SAFECHAT_SCIM_GROUPS_PROVIDER names {key!r}, which is no configured provider"
        )
    return key


# --- SAML 2.0 -------------------------------------------------------------------------


def _pem_certificate(text: str, *, key: str) -> str:
    """A certificate as PEM, from PEM or the bare base64 of its DER (as IdP metadata and
    admin consoles show it)."""
    text = text.strip()
    try:
        if "-----BEGIN" in text:
            cert = x509.load_pem_x509_certificate(text.encode())
        else:
            cert = x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error):
        raise SsoConfigurationError(f"provider {key!r}: a certificate does not parse") from None
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _read(path: str, *, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SsoConfigurationError(f"{what}: cannot read {path}: {type(exc).__name__}") from None


def _one_or_many(entry: Mapping[str, Any], name: str, *, key: str) -> tuple[str, ...]:
    value = entry.get(name)
    if value is None:
        return ()
    return _strings([value] if isinstance(value, str) else value, name=name, key=key)


def _idp_certificates(entry: Mapping[str, Any], *, key: str) -> tuple[str, ...]:
    """The IdP's signing certificates (two while it rolls its key over)."""
    texts = list(_one_or_many(entry, "certificate", key=key))
    for path in _one_or_many(entry, "certificate_file", key=key):
        texts.append(_read(path, what=f"provider {key!r}"))
    if not texts:
        raise SsoConfigurationError(
            f"provider {key!r}: the IdP's signing certificate is needed "
            "(certificate or certificate_file)"
        )
    return tuple(_pem_certificate(t, key=key) for t in texts)


def _saml_idp(entry: object, *, production: bool) -> SamlIdentityProvider:
    entry, key = _entry_and_key(entry, what="SAML identity provider", fields=_SAML_FIELDS)
    entity_id = _text(entry, "entity_id", key=key)
    if len(entity_id) > 512:
        raise SsoConfigurationError(f"provider {key!r}: entity_id is longer than 512")
    sso_url = _text(entry, "sso_url", key=key)
    _check_url(sso_url, name="sso_url", key=key, production=production)
    slo_url = _text(entry, "slo_url", key=key, default="")
    if slo_url:
        _check_url(slo_url, name="slo_url", key=key, production=production)
    attributes = {
        name: _strings(entry.get(name, list(default)), name=name, key=key)
        for name, default in DEFAULT_SAML_ATTRIBUTES.items()
    }
    return SamlIdentityProvider(
        key=key,
        name=_text(entry, "name", key=key, default=key)[:64] or key,
        entity_id=entity_id,
        sso_url=sso_url,
        slo_url=slo_url,
        certificates=_idp_certificates(entry, key=key),
        trust_mfa=_flag(entry, "trust_mfa", key=key),
        mfa_authn_contexts=_strings(
            entry.get("mfa_authn_contexts", list(DEFAULT_MFA_AUTHN_CONTEXTS)),
            name="mfa_authn_contexts",
            key=key,
        ),
        requested_authn_contexts=_strings(
            entry.get("requested_authn_contexts", []), name="requested_authn_contexts", key=key
        ),
        create_accounts=_flag(entry, "create_accounts", key=key),
        username_attribute=attributes["username_attribute"],
        email_attribute=attributes["email_attribute"],
        first_name_attribute=attributes["first_name_attribute"],
        last_name_attribute=attributes["last_name_attribute"],
        groups_attribute=_strings(
            entry.get("groups_attribute", list(DEFAULT_SAML_GROUPS_ATTRIBUTES)),
            name="groups_attribute",
            key=key,
        ),
        role_map=_mapping(entry, "role_map", key=key),
        barrier_group_map=_mapping(entry, "barrier_group_map", key=key),
    )


def saml_identity_providers_parse(
    raw: str, *, production: bool
) -> tuple[SamlIdentityProvider, ...]:
    """The IdPs of ``SAFECHAT_SAML_IDPS`` (a JSON list; empty or unset: none).

    Raises :class:`SsoConfigurationError` for anything that is not a safe configuration:
    a missing entity ID or SSO URL, an SSO URL over plain HTTP (except on this machine in
    development), no signing certificate or one that does not parse, an unknown field,
    two IdPs with one key or one entity ID.
    """
    entries = _json_list(raw, setting="SAFECHAT_SAML_IDPS")
    idps = [_saml_idp(e, production=production) for e in entries]
    _unique(p.key for p in idps)
    if len({p.entity_id for p in idps}) != len(idps):
        raise SsoConfigurationError("two SAML identity providers have one entity_id")
    return tuple(idps)


def _pem_setting(environ: Mapping[str, str], name: str) -> str:
    """``<name>`` (PEM in the variable) or the file ``<name>_FILE`` names."""
    path = environ.get(f"{name}_FILE", "").strip()
    if path:
        return _read(path, what=f"{name}_FILE")
    return environ.get(name, "").replace("\\n", "\n").strip()


def saml_service_provider_parse(
    *, environ: Mapping[str, str], production: bool, default_base_url: str
) -> SamlServiceProvider:
    """SafeChat's side of SAML, from ``SAFECHAT_SAML_SP_BASE_URL``,
    ``SAFECHAT_SAML_SP_ENTITY_ID`` and the key and certificate
    (``SAFECHAT_SAML_SP_KEY``/``_CERT``, PEM, or ``SAFECHAT_SAML_SP_KEY_FILE``/``_CERT_FILE``).

    Needed only where a SAML IdP is configured. Raises :class:`SsoConfigurationError`: a
    base URL that is not an origin (or plain HTTP in production, or off this machine), no
    key or certificate, a key that is not RSA of at least 2048 bits or does not match the
    certificate, a certificate expired (in production).
    """
    base_url = (environ.get("SAFECHAT_SAML_SP_BASE_URL", "") or default_base_url).strip()
    base_url = base_url.rstrip("/")
    parts = urlsplit(base_url)
    if parts.path or parts.query or parts.fragment:
        raise SsoConfigurationError(
            "SAFECHAT_SAML_SP_BASE_URL must be an origin: scheme, host and port only"
        )
    _check_url(base_url, name="SAFECHAT_SAML_SP_BASE_URL", key="saml", production=production)
    entity_id = environ.get("SAFECHAT_SAML_SP_ENTITY_ID", "").strip() or base_url + SAML_SP_PATH
    if len(entity_id) > 512:
        raise SsoConfigurationError("SAFECHAT_SAML_SP_ENTITY_ID is longer than 512")
    key_pem = _pem_setting(environ, "SAFECHAT_SAML_SP_KEY")
    cert_pem = _pem_setting(environ, "SAFECHAT_SAML_SP_CERT")
    if not key_pem or not cert_pem:
        raise SsoConfigurationError(
            "a SAML identity provider is configured: SafeChat's SAML key and certificate are "
            "needed (SAFECHAT_SAML_SP_KEY_FILE and SAFECHAT_SAML_SP_CERT_FILE, or the PEM in "
            "SAFECHAT_SAML_SP_KEY and SAFECHAT_SAML_SP_CERT)"
        )
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise SsoConfigurationError("SafeChat's SAML key is not an unencrypted PEM key") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise SsoConfigurationError(
            "SafeChat's SAML certificate is not a PEM certificate"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < SP_KEY_MIN_BITS:
        raise SsoConfigurationError(
            f"SafeChat's SAML key must be RSA of at least {SP_KEY_MIN_BITS} bits"
        )
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, raw) != key.public_key().public_bytes(der, raw):
        raise SsoConfigurationError("SafeChat's SAML key does not match its certificate")
    if production and cert.not_valid_after_utc <= datetime.now(cert.not_valid_after_utc.tzinfo):
        raise SsoConfigurationError("SafeChat's SAML certificate has expired")
    return SamlServiceProvider(
        entity_id=entity_id,
        base_url=base_url,
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


# --- Local passwords (docs/accounts.md "Local passwords and the break-glass account") --


class LocalPasswordPolicyError(SsoConfigurationError):
    """The local-password settings cannot be used as given; the message says why."""


def local_password_policy_check(
    *, local_passwords: bool, break_glass: Iterable[str], providers_configured: bool
) -> tuple[str, ...]:
    """The break-glass usernames as given, checked: turning local passwords off needs an
    identity provider to sign people in, and at least one break-glass account for the day
    it is unreachable. Raises :class:`LocalPasswordPolicyError` otherwise.

    >>> local_password_policy_check(
    ...     local_passwords=True, break_glass=[], providers_configured=False)
    ()
    >>> local_password_policy_check(
    ...     local_passwords=False, break_glass=["Glass"], providers_configured=True)
    ('Glass',)
    """
    names = tuple(n.strip() for n in break_glass if n.strip())
    if local_passwords:
        return names
    if not providers_configured:
        raise LocalPasswordPolicyError(
            "SAFECHAT_LOCAL_PASSWORDS=off needs an identity provider "
            "(SAFECHAT_OIDC_PROVIDERS or SAFECHAT_SAML_IDPS)"
        )
    if not names:
        raise LocalPasswordPolicyError(
            "SAFECHAT_LOCAL_PASSWORDS=off needs a break-glass account "
            "(SAFECHAT_BREAK_GLASS_USERNAMES)"
        )
    return names
