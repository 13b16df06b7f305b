"""A real SAML identity provider for the tests: pysaml2's own IdP (``saml2.server.Server``),
with an RSA key and certificate made for the run, reading SafeChat's SP metadata as any
IdP would. It parses SafeChat's signed AuthnRequest (checking its signature) and answers
with a Response it signs itself; a test may change the assertion before it is signed
(``tamper``), or the signed document after (wrapping, comments).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

Tamper = Callable[[Any], None]


def key_and_certificate(common_name: str, *, bits: int = 2048) -> tuple[str, str]:
    """A fresh RSA key (PKCS#8 PEM) and a self-signed certificate (PEM) for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


class _Server(Server):  # type: ignore[misc]
    """pysaml2's IdP, with a hook on the assertion before it is signed."""

    tamper: Tamper | None = None

    def setup_assertion(self, *args: Any, **kwargs: Any) -> Any:
        assertion = super().setup_assertion(*args, **kwargs)
        if self.tamper is not None:
            self.tamper(assertion)
        return assertion


@dataclass
class Answer:
    """The IdP's answer: where the browser posts it, and the posted form's value."""

    acs_url: str
    saml_response: str
    request_id: str

    @property
    def xml(self) -> str:
        return base64.b64decode(self.saml_response).decode()

    def with_xml(self, document: str) -> Answer:
        encoded = base64.b64encode(document.encode()).decode()
        return Answer(self.acs_url, encoded, self.request_id)


@dataclass
class SamlIdp:
    """One IdP: its entity ID, SSO URL, signing key and certificate (PEM)."""

    entity_id: str
    sso_url: str
    key_pem: str = field(repr=False)
    cert_pem: str
    folder: Path
    signing_algorithm: str = SIG_RSA_SHA256
    digest_algorithm: str = DIGEST_SHA256

    def server(self, sp_metadata: str) -> _Server:
        """The IdP, knowing SafeChat from its SP metadata (as an operator would set it up)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / "idp.key"
        cert_file = self.folder / "idp.crt"
        key_file.write_text(self.key_pem)
        cert_file.write_text(self.cert_pem)
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "key_file": str(key_file),
                "cert_file": str(cert_file),
                "metadata": {"inline": [sp_metadata]},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "want_authn_requests_signed": True,
                        "signing_algorithm": self.signing_algorithm,
                        "digest_algorithm": self.digest_algorithm,
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                                # Names as the SAML V2.0 X.500/LDAP attribute profile has them
                                # (urn:oid:...), as most IdPs send them.
                                "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
                            }
                        },
                    }
                },
            }
        )
        return _Server(config=config)

    def refuse(self, authn_request_url: str, *, sp_metadata: str) -> Answer:
        """Answer SafeChat's request with an error status (the person was not signed in)."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authn_request_url).query).items()}
        server = self.server(sp_metadata)
        message = server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=None,
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        ).message
        acs_url = str(message.assertion_consumer_service_url)
        response = server.create_error_response(
            message.id, acs_url, ("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed", "no")
        )
        encoded = base64.b64encode(str(response).encode()).decode()
        return Answer(acs_url=acs_url, saml_response=encoded, request_id=str(message.id))

    def logout_url(
        self,
        *,
        sp_metadata: str,
        destination: str,
        subject: str,
        session_indexes: list[str] | None = None,
        sign: bool = True,
        relay_state: str = "after-logout",
    ) -> str:
        """The IdP's front-channel LogoutRequest for ``subject`` (HTTP-Redirect, signed
        with its key unless told not to): the URL the browser is sent to."""
        server = self.server(sp_metadata)
        _, request = server.create_logout_request(
            destination,
            self.entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
            session_indexes=session_indexes,
        )
        info = server.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(request),
            destination,
            relay_state,
            sign=sign,
            sigalg=self.signing_algorithm if sign else None,
        )
        return str(dict(info["headers"])["Location"])

    def metadata(self, sp_metadata: str) -> str:
        return str(entity_descriptor(self.server(sp_metadata).config))

    def answer(
        self,
        authn_request_url: str,
        *,
        sp_metadata: str,
        subject: str,
        attributes: dict[str, list[str]] | None = None,
        authn_context: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        sign_assertion: bool = True,
        sign_response: bool = False,
        tamper: Tamper | None = None,
        in_response_to: str | bool | None = True,
        destination: str | None = None,
        name_id_format: str = NAMEID_FORMAT_PERSISTENT,
    ) -> Answer:
        """Read SafeChat's AuthnRequest from the redirect URL (its signature checked) and
        answer it for ``subject``, signed as asked."""
        assert authn_request_url.startswith(self.sso_url + "?"), authn_request_url
        query = {k: v[0] for k, v in parse_qs(urlsplit(authn_request_url).query).items()}
        server = self.server(sp_metadata)
        request = server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query["SigAlg"],
            signature=query["Signature"],
        )
        message = request.message
        acs_url = str(message.assertion_consumer_service_url)
        answered = message.id if in_response_to is True else in_response_to or None
        server.tamper = tamper
        response = server.create_authn_response(
            identity=attributes or {},
            in_response_to=answered,
            destination=destination or acs_url,
            sp_entity_id=message.issuer.text,
            name_id=NameID(format=name_id_format, text=subject),
            authn={"class_ref": authn_context, "authn_auth": self.entity_id},
            sign_assertion=sign_assertion,
            sign_response=sign_response,
        )
        encoded = base64.b64encode(str(response).encode()).decode()
        return Answer(acs_url=acs_url, saml_response=encoded, request_id=str(message.id))
