"""The OpenID Connect relying party: the authorisation code flow with PKCE, through Authlib.

What Authlib does, and we rely on: discovery (the provider's metadata document), the
``state`` and ``nonce`` of each flow kept in the person's session and used once, PKCE
(``S256``), the code exchange at the token endpoint, and the ID token's checks (OpenID
Connect Core 1.0, 3.1.3.7): the signature against the provider's published keys, ``iss``,
``aud``, ``azp``, ``exp``, ``iat``, ``nonce``, ``at_hash``.

What we add, because a library default would not be safe enough here:

* the accepted signature algorithms are the configured asymmetric ones, whatever the
  provider's metadata lists (``none`` and ``HS*`` never: no alg-none tokens, no RSA public
  key taken for an HMAC secret);
* ``aud`` must contain our client id (Authlib checks only ``azp`` unless told);
* the discovery document's ``issuer`` must be exactly the configured one (Discovery 1.0,
  4.3), so a document served from elsewhere cannot redirect the keys;
* each flow is bound to its provider and ages out after ``SAFECHAT_OIDC_FLOW_SECONDS``;
* metadata and keys are cached (``SAFECHAT_OIDC_METADATA_SECONDS``), keys re-read at once
  for an unknown ``kid``.

Back-channel logout (OpenID Connect Back-Channel Logout 1.0): :func:`logout_token_read`
checks a Logout Token the provider posts, with the same keys and algorithms as its ID
tokens, and says whose sessions end; the ID token's ``sid`` is kept with each session
for it.

Every failure becomes an :class:`OidcRefused` with a reason from :data:`REASONS`; the view
records it through ``accounts.services`` and answers a 4xx page (502 when the provider
itself cannot be reached). This module writes nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.django_client import DjangoIntegration, DjangoOAuth2App
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

from accounts.credentials import sha256_hex
from accounts.sso import (
    GROUPS_MAX,
    AssertedIdentity,
    FederatedRefused,
    OidcProvider,
    OneTimeAssertion,
    provider_named,
)

logger = logging.getLogger(__name__)
SESSION_FLOWS = "safechat.sso.flows"  # state -> {"provider", "next", "started"}
FLOWS_KEPT = 5  # flows in progress per browser session (tabs); the oldest goes first
# Seconds a clock may differ from the provider's (``exp``, ``iat``, ``nbf``).
CLOCK_LEEWAY_SECONDS = 60

# Why a sign-in through a provider was refused: the ``reason`` of ``auth.federated.refused``.
REASONS = {
    "state": "The sign-in could not be matched to this browser. Start again.",
    "nonce": "The provider's answer was not issued for this sign-in.",
    "audience": "The provider's answer was issued to another application.",
    "issuer": "The provider's answer came from another issuer.",
    "expired": "The provider's answer has expired. Start again.",
    "algorithm": "The provider's answer is signed in a way SafeChat does not accept.",
    "signature": "The provider's answer is not signed by the provider.",
    "id_token": "The provider's answer is not a valid identity token.",
    "provider_error": "The identity provider did not sign you in.",
    "token_exchange": "The identity provider refused to complete the sign-in. Start again.",
    "provider_unreachable": "The identity provider cannot be reached. Try again later.",
    "provider_metadata": "The identity provider's configuration could not be used.",
    "unknown_provider": "There is no such identity provider.",
    # A Logout Token (Back-Channel Logout 1.0, 2.6) that is not one.
    "logout_token": "The logout token is not a signed JWT.",
    "issued_at": "The logout token's iat is missing, in the future or too old.",
    "jti": "The logout token has no jti.",
    "events": "The logout token does not carry the back-channel logout event.",
    "logout_subject": "The logout token names neither a sub nor a sid.",
    "nonce_present": "A logout token must not carry a nonce.",
    "replayed": "This logout token was used already.",
}


class OidcRefused(FederatedRefused):
    """A sign-in through an OpenID Connect provider that failed a check; ``reason`` is a key
    of :data:`REASONS`. ``detail`` is for the audit log only (the claim that failed, the
    provider's error code): never shown, never a token or a secret."""

    REASONS = REASONS
    FALLBACK = REASONS["id_token"]


def provider_get(key: str) -> OidcProvider | None:
    """The configured provider with ``key``, or None."""
    return provider_named(providers(), key)


def providers() -> tuple[OidcProvider, ...]:
    configured: tuple[OidcProvider, ...] = settings.SAFECHAT_OIDC_PROVIDERS
    return configured


def _cache_key(provider: OidcProvider, what: str) -> str:
    return f"sso:{what}:{sha256_hex(provider.metadata_url + '|' + provider.issuer)}"


class _ProviderApp(DjangoOAuth2App):  # type: ignore[misc]
    """Authlib's Django client for one provider, with the checks this module adds."""

    def __init__(self, provider: OidcProvider) -> None:
        self.provider = provider
        super().__init__(
            DjangoIntegration(provider.key),
            name=provider.key,
            client_id=provider.client_id,
            client_secret=provider.client_secret or None,
            server_metadata_url=provider.metadata_url,
            client_kwargs={
                "scope": " ".join(provider.scopes),
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": provider.token_auth_method,
                "default_timeout": settings.SAFECHAT_OIDC_HTTP_TIMEOUT_SECONDS,
            },
        )

    def load_server_metadata(self) -> dict[str, Any]:
        if "_loaded_at" not in self.server_metadata:
            key = _cache_key(self.provider, "metadata")
            cached = cache.get(key)
            if isinstance(cached, dict):
                self.server_metadata.update(cached)
            else:
                metadata: dict[str, Any] = super().load_server_metadata()
                _metadata_check(self.provider, metadata)
                cache.set(key, dict(metadata), settings.SAFECHAT_OIDC_METADATA_SECONDS)
        # Ours, whatever the document says: the algorithms an ID token may be signed with.
        self.server_metadata["id_token_signing_alg_values_supported"] = list(
            self.provider.algorithms
        )
        return self.server_metadata  # type: ignore[no-any-return]

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        key = _cache_key(self.provider, "jwks")
        if not force:
            cached = cache.get(key)
            if isinstance(cached, dict):
                return cached
        jwks: dict[str, Any] = super().fetch_jwk_set(force=True)
        cache.set(key, jwks, settings.SAFECHAT_OIDC_METADATA_SECONDS)
        return jwks


def _metadata_check(provider: OidcProvider, metadata: dict[str, Any]) -> None:
    if metadata.get("issuer") != provider.issuer:
        raise OidcRefused("provider_metadata", detail="issuer differs", status=502)
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(endpoint), str):
            raise OidcRefused("provider_metadata", detail=f"no {endpoint}", status=502)


def authorization_redirect_url(
    *, request: HttpRequest, provider: OidcProvider, redirect_uri: str, next_url: str
) -> str:
    """Start a flow: the provider's authorisation URL (code flow, PKCE S256, a fresh
    ``state`` and ``nonce``), with the flow remembered in this browser's session."""
    app = _ProviderApp(provider)
    extra = {"acr_values": provider.acr_values} if provider.acr_values else {}
    try:
        found = app.create_authorization_url(redirect_uri, **extra)
    except requests.RequestException as exc:
        raise OidcRefused("provider_unreachable", detail=type(exc).__name__, status=502) from None
    except (ValueError, KeyError) as exc:
        raise OidcRefused("provider_metadata", detail=type(exc).__name__, status=502) from None
    app.save_authorize_data(request, redirect_uri=redirect_uri, **found)
    flows: dict[str, dict[str, Any]] = dict(request.session.get(SESSION_FLOWS, {}))
    flows[found["state"]] = {"provider": provider.key, "next": next_url, "started": time.time()}
    # A few flows at once (two tabs); an abandoned one never piles up.
    newest = sorted(flows.items(), key=lambda item: item[1]["started"])[-FLOWS_KEPT:]
    request.session[SESSION_FLOWS] = dict(newest)
    return str(found["url"])


def _flow_take(request: HttpRequest, provider: OidcProvider) -> dict[str, Any]:
    """The flow this callback answers (used once), or OidcRefused("state")."""
    state = request.GET.get("state", "")
    flows: dict[str, dict[str, Any]] = dict(request.session.get(SESSION_FLOWS, {}))
    flow = flows.pop(state, None) if state else None
    request.session[SESSION_FLOWS] = flows
    if flow is None:
        raise OidcRefused("state", detail="unknown state")
    if flow.get("provider") != provider.key:
        raise OidcRefused("state", detail="another provider's flow")
    if time.time() - float(flow.get("started", 0)) > settings.SAFECHAT_OIDC_FLOW_SECONDS:
        raise OidcRefused("state", detail="flow too old")
    return flow


_CLAIM_REASONS = {
    "aud": "audience",
    "azp": "audience",
    "iss": "issuer",
    "nonce": "nonce",
    "exp": "expired",
}


def _refusal_of(exc: Exception) -> OidcRefused:
    """The refusal an exception of the flow stands for (most specific first)."""
    if isinstance(exc, MismatchingStateError):
        return OidcRefused("state", detail="no such flow in the library's state")
    if isinstance(exc, ExpiredTokenError):
        return OidcRefused("expired", detail="exp")
    if isinstance(exc, InvalidClaimError | MissingClaimError):
        claim = str(getattr(exc, "claim", "") or "").split(",")[0]
        return OidcRefused(_CLAIM_REASONS.get(claim, "id_token"), detail=f"claim {claim}")
    if isinstance(exc, UnsupportedAlgorithmError):
        return OidcRefused("algorithm", detail=str(exc))
    if isinstance(exc, BadSignatureError | InvalidKeyIdError):
        return OidcRefused("signature", detail=type(exc).__name__)
    if isinstance(exc, JoseError | ValueError):
        return OidcRefused("id_token", detail=type(exc).__name__)
    if isinstance(exc, OAuthError):
        return OidcRefused("token_exchange", detail=str(getattr(exc, "error", "")))
    if isinstance(exc, requests.RequestException):
        return OidcRefused("provider_unreachable", detail=type(exc).__name__, status=502)
    if isinstance(exc, KeyError | TypeError | RuntimeError):
        # A token response or a document without what the protocol says it holds.
        return OidcRefused("provider_metadata", detail=type(exc).__name__, status=502)
    raise exc


def identity_from_callback(
    *, request: HttpRequest, provider: OidcProvider
) -> tuple[AssertedIdentity, str]:
    """Finish a flow at its callback: the identity the provider asserted, and where the
    person was going. Raises :class:`OidcRefused` for anything that does not hold, having
    used the flow up (a replayed callback finds no flow)."""
    flow = _flow_take(request, provider)
    error = request.GET.get("error")
    app = _ProviderApp(provider)
    if error:
        app.framework.clear_state_data(request.session, request.GET.get("state", ""))
        raise OidcRefused("provider_error", detail=error[:64])
    options = {
        "iss": {"essential": True, "value": provider.issuer},
        "aud": {"essential": True, "value": provider.client_id},
        "sub": {"essential": True},
        "exp": {"essential": True},
    }
    try:
        token = app.authorize_access_token(
            request, claims_options=options, leeway=CLOCK_LEEWAY_SECONDS
        )
    except OidcRefused:
        raise
    except Exception as exc:
        raise _refusal_of(exc) from None
    claims = token.get("userinfo")
    if not claims:
        raise OidcRefused("id_token", detail="no id_token in the token response")
    raw = token.get("id_token")
    identity = dataclasses.replace(
        _identity(provider, dict(claims)),
        id_token=raw if isinstance(raw, str) and len(raw) <= ID_TOKEN_KEPT_MAX else "",
    )
    return identity, str(flow.get("next") or "")


# --- Logout started by SafeChat (OpenID Connect RP-Initiated Logout 1.0) ----------------

SESSION_LOGOUT_HINT = "safechat.oidc.logout"  # {"provider": key, "id_token": the ID token}
ID_TOKEN_KEPT_MAX = 8192  # characters; a longer ID token is not kept as a logout hint


def logout_hint_keep(*, request: HttpRequest, identity: AssertedIdentity) -> None:
    """Keep, in the session a sign-in through ``identity``'s provider started, what a
    SafeChat sign-out needs to end the provider's session too: the provider and the ID
    token (its ``id_token_hint``). The session store is server-side (the database)."""
    if isinstance(identity.provider, OidcProvider) and identity.id_token:
        request.session[SESSION_LOGOUT_HINT] = {
            "provider": identity.provider.key,
            "id_token": identity.id_token,
        }


def logout_hint_take(request: HttpRequest) -> dict[str, str] | None:
    """The logout hint this session kept, if any (read before the session is flushed)."""
    hint = request.session.get(SESSION_LOGOUT_HINT)
    if isinstance(hint, dict) and all(
        isinstance(hint.get(k), str) for k in ("provider", "id_token")
    ):
        return {"provider": hint["provider"], "id_token": hint["id_token"]}
    return None


def end_session_url(*, hint: dict[str, str], post_logout_redirect_uri: str) -> str:
    """Where to send the browser so the provider ends its own session too (RP-Initiated
    Logout 1.0, section 2): its discovery document's ``end_session_endpoint`` with
    ``id_token_hint``, ``client_id``, ``post_logout_redirect_uri`` (which the provider
    must have registered) and a fresh ``state``. "" where the provider is no longer
    configured, publishes no such endpoint, or cannot be reached: SafeChat's own sign-out
    has happened either way."""
    provider = provider_get(hint["provider"])
    if provider is None:
        return ""
    try:
        metadata = _ProviderApp(provider).load_server_metadata()
    except Exception:  # an unreachable provider: the sign-out here stands on its own
        logger.warning("provider %s metadata unavailable for logout", provider.key)
        return ""
    endpoint = metadata.get("end_session_endpoint")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in {"https", "http"}:
        return ""
    query = urlencode(
        {
            "id_token_hint": hint["id_token"],
            "client_id": provider.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "state": secrets.token_urlsafe(16),
        }
    )
    return f"{endpoint}{'&' if urlsplit(endpoint).query else '?'}{query}"


def _text_claim(claims: dict[str, Any], name: str, limit: int = 254) -> str:
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _identity(provider: OidcProvider, claims: dict[str, Any]) -> AssertedIdentity:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise OidcRefused("id_token", detail="sub")
    amr = claims.get("amr")
    acr = claims.get("acr")
    sid = claims.get("sid")
    return AssertedIdentity(
        provider=provider,
        issuer=str(claims["iss"]),
        subject=subject,
        email=_text_claim(claims, "email"),
        email_verified=claims.get("email_verified") is True,
        username=_text_claim(claims, provider.username_claim, 150),
        first_name=_text_claim(claims, "given_name", 150),
        last_name=_text_claim(claims, "family_name", 150),
        amr=tuple(v for v in amr if isinstance(v, str)) if isinstance(amr, list) else (),
        acr=acr if isinstance(acr, str) else "",
        # The provider's session (Back-Channel Logout 1.0, 2.1): its Logout Token names
        # it, compared exactly, so kept as sent (one longer than the column is not kept).
        session_index=sid if isinstance(sid, str) and len(sid) <= 255 else "",
        groups=_groups_claim(claims.get(provider.groups_claim)),
    )


def _groups_claim(value: object) -> tuple[str, ...]:
    """The person's groups at the provider (a list of strings, or one string), at most
    ``GROUPS_MAX`` of them, each at most 255 characters; anything else is no group."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and 0 < len(v) <= 255)[:GROUPS_MAX]


# --- Back-channel logout (OpenID Connect Back-Channel Logout 1.0) -------------------------

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# How old a Logout Token's ``iat`` may be: the provider sends it as the person signs out
# there, so minutes are plenty; a token held back longer is refused (section 2.6, step 6).
LOGOUT_TOKEN_MAX_AGE_SECONDS = 300
# A Logout Token is a few hundred bytes; anything far larger is not one.
LOGOUT_TOKEN_MAX_CHARS = 16_384


@dataclass(frozen=True)
class LogoutOrder:
    """A Logout Token that passed every check: whose sessions end. ``identity.subject`` is
    its ``sub`` ("" when it names only a session); ``identity.session_index`` its ``sid``
    ("" when it names only the person); ``identity.one_time`` its ``jti``."""

    identity: AssertedIdentity

    @property
    def session_indexes(self) -> tuple[str, ...]:
        sid = self.identity.session_index
        return (sid,) if sid else ()


def _jose_header(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise OidcRefused("logout_token", detail="header") from None
    if not isinstance(header, dict):
        raise OidcRefused("logout_token", detail="header")
    return header


def _key_set(jwks: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # checked as it is read


def _logout_claims(provider: OidcProvider, token: str) -> dict[str, Any]:
    """The claims of ``token`` once its signature checks out with one of the provider's
    published keys, under an algorithm configured for it (never ``none``, never ``HS*``)."""
    if not token or len(token) > LOGOUT_TOKEN_MAX_CHARS or token.count(".") != 2:
        raise OidcRefused("logout_token", detail="not a compact JWS")
    alg = _jose_header(token).get("alg")
    if not isinstance(alg, str) or alg not in provider.algorithms:
        raise OidcRefused("algorithm", detail=f"alg {str(alg)[:32]}")
    app = _ProviderApp(provider)
    algorithms = list(provider.algorithms)
    try:
        try:
            decoded = jwt.decode(token, _key_set(app.fetch_jwk_set()), algorithms)
        except InvalidKeyIdError:
            # A key the provider published since the cached set was read.
            fresh = _key_set(app.fetch_jwk_set(force=True))
            decoded = jwt.decode(token, fresh, algorithms)
    except OidcRefused:
        raise
    except JoseError as exc:
        refused = _refusal_of(exc)
        if refused.reason == "id_token":
            refused = OidcRefused("logout_token", detail=refused.detail)
        raise refused from None
    except (ValueError, TypeError) as exc:
        raise OidcRefused("logout_token", detail=type(exc).__name__) from None
    except Exception as exc:
        raise _refusal_of(exc) from None
    claims = decoded.claims
    if not isinstance(claims, dict):
        raise OidcRefused("logout_token", detail="claims")
    return claims


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def logout_token_read(*, provider: OidcProvider, token: str) -> LogoutOrder:
    """Check a Logout Token the provider posted to SafeChat's back-channel logout endpoint,
    as OpenID Connect Back-Channel Logout 1.0, section 2.6, says: a JWS signed with one of
    the provider's published keys under a configured asymmetric algorithm; ``iss`` exactly
    the provider's issuer; ``aud`` containing our client id; ``iat`` present, not in the
    future and at most ``LOGOUT_TOKEN_MAX_AGE_SECONDS`` old; ``exp``, if present, not
    passed; ``jti`` present; ``events`` a JSON object with the back-channel logout event
    as a member whose value is a JSON object; ``sub`` or ``sid`` (or both) present;
    ``nonce`` absent. Clocks may differ by ``CLOCK_LEEWAY_SECONDS``.

    Returns the :class:`LogoutOrder`; raises :class:`OidcRefused` (status 400; 502 when
    the provider's keys cannot be read) for anything that does not hold. Writes nothing:
    the ``jti``'s single use is recorded by ``accounts.services.federated_logout``.
    """
    claims = _logout_claims(provider, token)
    if claims.get("iss") != provider.issuer:
        raise OidcRefused("issuer", detail="iss")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or provider.client_id not in audiences:
        raise OidcRefused("audience", detail="aud")
    now = time.time()
    issued_at = _number(claims, "iat")
    if issued_at is None or issued_at > now + CLOCK_LEEWAY_SECONDS:
        raise OidcRefused("issued_at", detail="iat missing or in the future")
    if issued_at < now - LOGOUT_TOKEN_MAX_AGE_SECONDS - CLOCK_LEEWAY_SECONDS:
        raise OidcRefused("expired", detail="iat too old")
    expires = _number(claims, "exp")
    if "exp" in claims and (expires is None or expires < now - CLOCK_LEEWAY_SECONDS):
        raise OidcRefused("expired", detail="exp")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise OidcRefused("jti", detail="jti")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise OidcRefused("events", detail="events")
    if "nonce" in claims:
        raise OidcRefused("nonce_present", detail="nonce")
    subject = claims.get("sub", "")
    sid = claims.get("sid", "")
    if not isinstance(subject, str) or not isinstance(sid, str) or len(subject) > 255:
        raise OidcRefused("logout_subject", detail="sub or sid not a string")
    if not subject and not sid:
        raise OidcRefused("logout_subject", detail="neither sub nor sid")
    if len(sid) > 255:
        raise OidcRefused("logout_subject", detail="sid too long")
    # Remembered as long as it could be accepted: past its iat's window it is refused
    # anyway, whatever its exp says.
    last_accepted = issued_at + LOGOUT_TOKEN_MAX_AGE_SECONDS + CLOCK_LEEWAY_SECONDS
    return LogoutOrder(
        identity=AssertedIdentity(
            provider=provider,
            issuer=provider.issuer,
            subject=subject,
            session_index=sid,
            one_time=OneTimeAssertion(
                assertion_id=jti,
                request_id="",
                valid_until=datetime.fromtimestamp(last_accepted, tz=UTC),
            ),
        )
    )
