"""django-oauth-toolkit's validator with the person's claims, and a misbehaviour switch.

``BEHAVIOUR`` (set through ``/control/behaviour/``) changes the next ID tokens after the
toolkit has made and signed them: claims replaced or dropped (``aud``, ``exp``, ``nonce``,
``iss``, ``amr``, ``acr``), or the token re-signed another way (``none``: unsigned;
``HS256-public-key``: an HMAC keyed with the provider's RSA public key, the classic key
confusion; ``forged``: RS256 with another RSA key under the same key id).

``SESSIONS`` holds each person's session id at the provider (``sid``, set as they sign in
there), which their ID tokens carry and a Logout Token names (``logout_token``).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwcrypto import jwk, jws  # type: ignore[import-untyped]
from oauth2_provider.oauth2_validators import OAuth2Validator

BEHAVIOUR: dict[str, Any] = {}
SESSIONS: dict[int, str] = {}  # the person's pk -> their sid at the provider
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed(header: dict[str, Any], claims: dict[str, Any], key: jwk.JWK) -> str:
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(key, alg=header["alg"], protected=json.dumps(header))
    return str(token.serialize(compact=True))


class MisbehavingValidator(OAuth2Validator):  # type: ignore[misc]
    # Every claim goes into the ID token, whatever the scopes (the tests ask for all).
    oidc_claim_scope = None

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "preferred_username": user.username,
            "given_name": user.first_name,
            "family_name": user.last_name,
            **({"sid": SESSIONS[user.pk]} if user.pk in SESSIONS else {}),
        }

    def finalize_id_token(self, id_token: Any, token: Any, token_handler: Any, request: Any) -> str:
        signed = str(super().finalize_id_token(id_token, token, token_handler, request))
        if not BEHAVIOUR:
            return signed
        header_part, payload_part, _ = signed.split(".")
        header = json.loads(_unb64(header_part))
        claims = json.loads(_unb64(payload_part))
        claims.update(BEHAVIOUR.get("claims", {}))
        for name in BEHAVIOUR.get("drop", []):
            claims.pop(name, None)
        return signed_as(BEHAVIOUR.get("sign", "RS256"), header, claims)


def private_key() -> jwk.JWK:
    return jwk.JWK.from_pem(os.environ["OIDC_PROVIDER_RSA_KEY"].encode())


def signed_as(how: str, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """``claims`` as a compact JWS: signed with the provider's key (``RS256``), or one of
    the misbehaviours above."""
    if how == "none":
        unsigned = {"alg": "none", "typ": header.get("typ", "JWT")}
        return f"{_b64(json.dumps(unsigned).encode())}.{_b64(json.dumps(claims).encode())}."
    private = private_key()
    if how == "HS256-public-key":
        public_pem = private.export_to_pem(private_key=False)
        key = jwk.JWK(kty="oct", k=_b64(public_pem))
        return _signed({**header, "alg": "HS256"}, claims, key)
    if how == "forged":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return _signed(header, claims, jwk.JWK.from_pem(pem))
    return _signed(header, claims, private)


def logout_token(*, client_id: str, sub: str = "", sid: str = "", behaviour: dict[str, Any]) -> str:
    """A Logout Token (Back-Channel Logout 1.0, 2.4) as the provider would send its client
        ``client_id``, signed with its key under the key id its JWKS publishes; ``behaviour``
        changes it like an ID token's (``claims``, ``drop``, ``sign``), and ``header`` replaces
    header parameters (a ``kid`` the JWKS does not publish)."""
    import secrets
    import time

    claims: dict[str, Any] = {
        "iss": os.environ["OIDC_PROVIDER_ISSUER"],
        "aud": client_id,
        "iat": int(time.time()),
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sub:
        claims["sub"] = sub
    if sid:
        claims["sid"] = sid
    claims.update(behaviour.get("claims", {}))
    for name in behaviour.get("drop", []):
        claims.pop(name, None)
    header = {"alg": "RS256", "typ": "logout+jwt", "kid": private_key().thumbprint()}
    header.update(behaviour.get("header", {}))
    return signed_as(behaviour.get("sign", "RS256"), header, claims)
