"""The SAML 2.0 service provider: SP-initiated Web SSO through pysaml2 (docs/sso.md).

SafeChat sends a signed ``AuthnRequest`` over the HTTP-Redirect binding and receives the
IdP's ``Response`` over HTTP-POST at the IdP's own assertion consumer service (ACS) URL.

What pysaml2 does, and we rely on: building and signing the request, the XML signature
checks (through ``xmlsec1``, only with the IdP's configured certificates, never a key the
message carries; one reference, to the signed element's own ID; enveloped; no
``ds:Object``), the schema, ``Status``, ``IssueInstant``, ``NotBefore``/``NotOnOrAfter``
of the conditions and the bearer confirmation, an ``AudienceRestriction`` that is there,
and ``InResponseTo`` against the request we sent.

What we add, because the library's defaults would not be safe enough here:

* the shape of the document before anything else reads it (defusedxml: no DTD or
  entities): exactly one ``Assertion``, a child of the ``Response``, no encrypted one;
  every ``ID`` unique; each signature a child of the element it signs and referring to
  it; SHA-2 signatures and digests only; no XML comment or processing instruction
  anywhere (a comment inside a signed ``NameID`` truncates it for some parsers while the
  signature still holds: the 2018 class of attacks). This closes signature wrapping
  whatever the library would have read;
* the assertion must be signed (a signed ``Response`` around an unsigned assertion is
  not enough: SAML Profiles 4.1.3.5 lets the IdP sign either, but only the assertion's
  signature travels with the statements we use, and requiring it leaves no path where an
  unsigned assertion is read);
* ``Destination`` must be present and be this IdP's ACS URL, the bearer confirmation's
  ``Recipient`` likewise (pysaml2 checks neither without more configuration);
  ``Issuer`` of the response and of the assertion must be the IdP the flow was started
  with; the assertion must carry ``Conditions`` with a ``NotOnOrAfter`` and an audience
  restriction naming us (pysaml2 accepts an assertion without them);
* the ``NameID`` must be persistent (the link; never an e-mail), with qualifiers, if any,
  naming this IdP and us;
* each flow is kept in a signed, short-lived cookie of its own (below), bound to one IdP,
  used once, and for at most ``SAFECHAT_SAML_FLOW_SECONDS``; the assertion's ID and the
  request's ID are made single-use by a database constraint (``SamlAssertionUse``).

Why not the session: the IdP's answer is a cross-site POST, and the session cookie is
``SameSite=Lax``, so browsers do not send it there. The flow cookie is ``SameSite=None;
Secure; HttpOnly``, limited to ``/accounts/saml/``, and holds only the IDs of the
requests this browser started (signed by SafeChat, so it cannot be forged): an
assertion is accepted only in the browser that asked for it (no login CSRF).

Every failure becomes a :class:`SamlRefused` with a reason from :data:`REASONS`; the
view records it through ``accounts.services`` and answers a 4xx page. This module
writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus
from xml.etree.ElementTree import Comment, Element, ProcessingInstruction, TreeBuilder
from xml.sax.saxutils import quoteattr

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError
from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.saml import NAMEID_FORMAT_PERSISTENT, SCM_BEARER
from saml2.samlp import logout_request_from_string
from saml2.validate import ResponseLifetimeExceed, ToEarly
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from accounts.credentials import sha256_hex
from accounts.sso import (
    GROUPS_MAX,
    AssertedIdentity,
    FederatedRefused,
    OneTimeAssertion,
    SamlIdentityProvider,
    SamlServiceProvider,
    provider_named,
)

if TYPE_CHECKING:
    from saml2.client import Saml2Client
    from saml2.config import SPConfig

# pysaml2's client, configuration, metadata, response and signature modules are imported
# where they are used: they build XML schemas when imported (a second or more), which
# every process, and the first request each serves, would pay otherwise.

# Seconds a clock may differ from the IdP's (NotBefore, NotOnOrAfter, IssueInstant).
CLOCK_SKEW_SECONDS = 60
# A response larger than this (base64, as posted) is refused unread: IdPs send a few KiB.
MAX_RESPONSE_CHARS = 256 * 1024
FLOW_COOKIE = "safechat_saml_flows"
FLOW_COOKIE_PATH = "/accounts/saml/"
FLOW_SALT = "safechat.saml.flows"
FLOWS_KEPT = 5  # flows in progress per browser (tabs); the oldest goes first

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
# XML Signature algorithms accepted (RFC 6931): SHA-2 only; SHA-1 is broken for signatures.
SIGNATURE_ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
DIGEST_ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)

# Why a SAML sign-in was refused: the ``reason`` of ``auth.federated.refused``.
REASONS = {
    "malformed": "The identity provider's answer could not be read.",
    "comment": "The identity provider's answer holds content SafeChat does not accept.",
    "wrapping": "The identity provider's answer is not shaped as a signed assertion must be.",
    "encrypted": "The identity provider sent an encrypted assertion; SafeChat needs it signed.",
    "unsigned": "The identity provider's assertion is not signed.",
    "algorithm": "The identity provider's answer is signed in a way SafeChat does not accept.",
    "signature": "The identity provider's answer is not signed by the provider.",
    "issuer": "The answer came from another identity provider.",
    "unsolicited": "SafeChat did not ask for this sign-in. Start again from SafeChat.",
    "in_response_to": "The sign-in could not be matched to this browser. Start again.",
    "destination": "The identity provider's answer was sent to another address.",
    "recipient": "The identity provider's assertion is for another address.",
    "audience": "The identity provider's assertion was issued to another application.",
    "expired": "The identity provider's answer has expired. Start again.",
    "not_yet_valid": "The identity provider's answer is not valid yet. Check the clocks.",
    "conditions": "The identity provider's assertion does not say how long it is valid.",
    "name_id": "The identity provider did not send a persistent identifier for you.",
    "assertion": "The identity provider's answer is not a valid assertion.",
    "provider_error": "The identity provider did not sign you in.",
    "unknown_provider": "There is no such identity provider.",
    "not_configured": "SAML sign-in is not configured.",
}


class SamlRefused(FederatedRefused):
    """A SAML sign-in that failed a check; ``reason`` is a key of :data:`REASONS`."""

    REASONS = REASONS
    FALLBACK = REASONS["assertion"]


def identity_providers() -> tuple[SamlIdentityProvider, ...]:
    configured: tuple[SamlIdentityProvider, ...] = settings.SAFECHAT_SAML_IDPS
    return configured


def identity_provider_get(key: str) -> SamlIdentityProvider | None:
    """The configured IdP with ``key``, or None."""
    return provider_named(identity_providers(), key)


def service_provider() -> SamlServiceProvider | None:
    """SafeChat's SAML side, or None where no IdP is configured."""
    sp: SamlServiceProvider | None = settings.SAFECHAT_SAML_SP
    return sp


def _service_provider() -> SamlServiceProvider:
    sp = service_provider()
    if sp is None:
        raise SamlRefused("not_configured", status=404)
    return sp


# --- pysaml2's configuration ------------------------------------------------------------


def _certificate_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def idp_metadata_xml(idp: SamlIdentityProvider) -> str:
    """The IdP's metadata as SafeChat is configured with it: its entity ID, its SSO URL
    (HTTP-Redirect) and its signing certificates, the only keys its signatures are
    checked with."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{_certificate_body(pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        "</md:KeyDescriptor>"
        for pem in idp.certificates
    )
    slo = (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f"Location={quoteattr(idp.slo_url)}/>"
        if idp.slo_url
        else ""
    )
    return (
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="{DS}" entityID={quoteattr(idp.entity_id)}>'
        f'<md:IDPSSODescriptor protocolSupportEnumeration="{SAMLP}" '
        'WantAuthnRequestsSigned="true">'
        f"{keys}"
        f"{slo}"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f"Location={quoteattr(idp.sso_url)}/>"
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


def _xmlsec_binary() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise SamlRefused("not_configured", detail="xmlsec1 is not installed", status=503)
    return found


@functools.lru_cache(maxsize=8)
def _sp_config(sp: SamlServiceProvider, idps: tuple[SamlIdentityProvider, ...]) -> SPConfig:
    """pysaml2's SP configuration for ``sp`` and ``idps`` (built once per configuration).

    The SP certificate (public) goes to a temporary file because pysaml2 reads it from one
    to publish it in our metadata; the private key stays in memory (``_client``).
    """
    from saml2.config import SPConfig

    with tempfile.NamedTemporaryFile(
        "w", prefix="safechat-saml-sp-", suffix=".pem", delete=False
    ) as cert_file:
        cert_file.write(sp.certificate_pem)
    config = SPConfig()
    config.load(
        {
            "entityid": sp.entity_id,
            "cert_file": cert_file.name,
            "xmlsec_binary": _xmlsec_binary(),
            "accepted_time_diff": CLOCK_SKEW_SECONDS,
            "only_use_keys_in_metadata": True,
            "metadata": {"inline": [idp_metadata_xml(idp) for idp in idps]},
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [
                            (sp.acs_url(idp.key), BINDING_HTTP_POST) for idp in idps
                        ],
                        "single_logout_service": [
                            (sp.slo_url(idp.key), BINDING_HTTP_REDIRECT)
                            for idp in idps
                            if idp.slo_url
                        ],
                    },
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "allow_unsolicited": False,
                    "authn_requests_signed": True,
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "name_id_format_allow_create": True,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                }
            },
        }
    )
    return config


def _client(sp: SamlServiceProvider) -> Saml2Client:
    """A client for one request (pysaml2's client keeps state per person it has seen)."""
    from saml2.client import Saml2Client
    from saml2.sigver import RSACrypto

    client = Saml2Client(config=_sp_config(sp, identity_providers()))
    key = load_pem_private_key(sp.private_key_pem.encode(), password=None)
    client.sec.sec_backend = RSACrypto(key)
    return client


def sp_metadata_xml() -> str:
    """SafeChat's SP metadata (SAML Metadata 2.0): entity ID, each IdP's ACS URL
    (HTTP-POST) and, for IdPs with single logout, its SLO URL (HTTP-Redirect), the signing
    certificate, signed requests and assertions wanted."""
    from saml2.metadata import entity_descriptor

    config = _sp_config(_service_provider(), identity_providers())
    return str(entity_descriptor(config))


# --- the flow, kept in its own cookie ------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    """One sign-in this browser started: the IdP, where it was going, when it started."""

    provider: str
    next_url: str
    started: float


def flows_read(request: HttpRequest) -> dict[str, Flow]:
    """The flows this browser has under way (request ID -> flow); a cookie that is not
    SafeChat's, or too old, counts as none."""
    raw = request.COOKIES.get(FLOW_COOKIE, "")
    if not raw:
        return {}
    try:
        data = signing.loads(raw, salt=FLOW_SALT, max_age=settings.SAFECHAT_SAML_FLOW_SECONDS)
    except signing.BadSignature:
        return {}
    flows: dict[str, Flow] = {}
    if isinstance(data, dict):
        for request_id, value in data.items():
            if isinstance(value, list) and len(value) == 3:
                provider, next_url, started = value
                flows[str(request_id)] = Flow(str(provider), str(next_url), float(started))
    return flows


def flows_cookie_value(flows: dict[str, Flow]) -> str:
    """The signed cookie value holding ``flows`` (the newest ``FLOWS_KEPT``)."""
    newest = sorted(flows.items(), key=lambda item: item[1].started)[-FLOWS_KEPT:]
    data = {rid: [f.provider, f.next_url, f.started] for rid, f in newest}
    return signing.dumps(data, salt=FLOW_SALT, compress=True)


def authn_request_url(*, idp: SamlIdentityProvider, flows: dict[str, Flow], next_url: str) -> str:
    """Start a flow: the IdP's SSO URL with a signed ``AuthnRequest`` (HTTP-Redirect,
    RSA-SHA256) asking for a persistent NameID, answered at the IdP's ACS URL by POST;
    the request's ID is added to ``flows`` (the caller stores them in the cookie)."""
    sp = _service_provider()
    client = _client(sp)
    extra: dict[str, Any] = {}
    if idp.requested_authn_contexts:
        extra["requested_authn_context"] = {
            "authn_context_class_ref": list(idp.requested_authn_contexts),
            "comparison": "exact",
        }
    request_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id,
        binding=BINDING_HTTP_REDIRECT,
        response_binding=BINDING_HTTP_POST,
        assertion_consumer_service_url=sp.acs_url(idp.key),
        nameid_format=NAMEID_FORMAT_PERSISTENT,
        sign=True,
        sigalg=SIG_RSA_SHA256,
        **extra,
    )
    flows[str(request_id)] = Flow(idp.key, next_url, time.time())
    return str(dict(info["headers"])["Location"])


# --- the response -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """What the structural check read from the document (not yet trusted)."""

    in_response_to: str
    destination: str
    issuer: str
    assertion: Element


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _parse(document: bytes) -> Element:
    # Comments and processing instructions kept, so that they can be refused.
    parser = DefusedXMLParser(
        target=TreeBuilder(insert_comments=True, insert_pis=True),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(document)
        root: Element = parser.close()
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise SamlRefused("malformed", detail=type(exc).__name__) from None
    return root


def _signature_check(owner: Element, signature: Element) -> None:
    """``signature`` must sign ``owner`` (its one reference is ``#`` + ``owner``'s ID)
    with SHA-2 algorithms."""
    references = signature.findall(f"{_tag(DS, 'SignedInfo')}/{_tag(DS, 'Reference')}")
    if len(references) != 1 or references[0].get("URI") != "#" + (owner.get("ID") or "\0"):
        raise SamlRefused("wrapping", detail="signature reference")
    method = signature.find(f"{_tag(DS, 'SignedInfo')}/{_tag(DS, 'SignatureMethod')}")
    digest = references[0].find(_tag(DS, "DigestMethod"))
    if method is None or method.get("Algorithm") not in SIGNATURE_ALGORITHMS:
        found = method.get("Algorithm", "") if method is not None else ""
        raise SamlRefused("algorithm", detail=found[:80])
    if digest is None or digest.get("Algorithm") not in DIGEST_ALGORITHMS:
        found = digest.get("Algorithm", "") if digest is not None else ""
        raise SamlRefused("algorithm", detail=found[:80])


def _shape_check(document: bytes) -> _Shape:
    """Refuse a document that is not shaped as one signed assertion in a response."""
    root = _parse(document)
    if root.tag != _tag(SAMLP, "Response"):
        raise SamlRefused("malformed", detail="not a Response")
    ids: set[str] = set()
    signatures = 0
    for element in root.iter():
        if element.tag is Comment or element.tag is ProcessingInstruction:  # type: ignore[comparison-overlap]
            raise SamlRefused("comment", detail="comment or processing instruction")
        if element.tag == _tag(SAML, "EncryptedAssertion"):
            raise SamlRefused("encrypted")
        signatures += element.tag == _tag(DS, "Signature")
        identifier = element.get("ID")
        if identifier is not None:
            if identifier in ids:
                raise SamlRefused("wrapping", detail="duplicate ID")
            ids.add(identifier)
    assertions = list(root.iter(_tag(SAML, "Assertion")))
    direct = root.findall(_tag(SAML, "Assertion"))
    status = root.find(f"{_tag(SAMLP, 'Status')}/{_tag(SAMLP, 'StatusCode')}")
    code = status.get("Value", "") if status is not None else ""
    if not assertions and code != SUCCESS:
        # The IdP did not sign the person in (they cancelled, it refused them).
        inner = status.find(_tag(SAMLP, "StatusCode")) if status is not None else None
        detail = (inner.get("Value", "") if inner is not None else "") or code
        raise SamlRefused("provider_error", detail=detail.rsplit(":", 1)[-1])
    if not assertions:
        raise SamlRefused("assertion", detail="no assertion")
    if len(assertions) != 1 or len(direct) != 1:
        raise SamlRefused("wrapping", detail=f"{len(assertions)} assertions")
    assertion = direct[0]
    own = assertion.findall(_tag(DS, "Signature"))
    if not own:
        raise SamlRefused("unsigned")
    if len(own) > 1:
        raise SamlRefused("wrapping", detail="two signatures on the assertion")
    _signature_check(assertion, own[0])
    outer = root.findall(_tag(DS, "Signature"))
    if len(outer) > 1 or signatures != 1 + len(outer):
        raise SamlRefused("wrapping", detail="a signature elsewhere")
    if outer:
        _signature_check(root, outer[0])
    issuers = {
        (element.text or "").strip()
        for element in (root.find(_tag(SAML, "Issuer")), assertion.find(_tag(SAML, "Issuer")))
        if element is not None
    }
    if len(issuers) != 1:
        raise SamlRefused("issuer", detail="the response's and the assertion's differ")
    return _Shape(
        in_response_to=root.get("InResponseTo", ""),
        destination=root.get("Destination", ""),
        issuer=issuers.pop(),
        assertion=assertion,
    )


def _library_refusal(exc: Exception) -> SamlRefused:
    """The refusal an exception of pysaml2's checks stands for (most specific first)."""
    from saml2.response import IncorrectlySigned, StatusError, UnsolicitedResponse
    from saml2.sigver import MissingKey, SigverError

    if isinstance(exc, ResponseLifetimeExceed):
        return SamlRefused("expired", detail="NotOnOrAfter")
    if isinstance(exc, ToEarly):
        return SamlRefused("not_yet_valid", detail="NotBefore")
    if isinstance(exc, UnsolicitedResponse):
        return SamlRefused("in_response_to", detail="not the request sent")
    if isinstance(exc, StatusError):
        return SamlRefused("provider_error", detail=type(exc).__name__)
    if isinstance(exc, IncorrectlySigned | MissingKey | SigverError):
        return SamlRefused("signature", detail=type(exc).__name__)
    if "AudienceRestrictions" in str(exc):
        return SamlRefused("audience", detail="not for us")
    # Anything else, SAMLError or the bare Exception pysaml2 raises for some failed checks
    # (a condition, a subject): not a valid assertion.
    return SamlRefused("assertion", detail=type(exc).__name__)


def _instant(element: Element | None, name: str) -> datetime | None:
    """An xs:dateTime attribute (UTC), or None if absent or not a time."""
    value = element.get(name) if element is not None else None
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise SamlRefused("assertion", detail=f"{name} is not a time") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _attributes(assertion: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or []:
        for attribute in statement.attribute or []:
            values = [
                v.text.strip() for v in attribute.attribute_value or [] if isinstance(v.text, str)
            ]
            found.setdefault(str(attribute.name), []).extend(values)
    return found


def _first(attributes: dict[str, list[str]], names: tuple[str, ...], limit: int) -> str:
    for name in names:
        for value in attributes.get(name, []):
            if value:
                return value[:limit]
    return ""


def _validity(
    assertion: Element, *, sp: SamlServiceProvider, acs_url: str, request_id: str
) -> datetime:
    """The assertion's conditions and bearer confirmation, checked (SAML Core 2.5.1,
    Profiles 4.1.4.2): each lifetime present and holding now, within the clock skew;
    every audience restriction naming us; each bearer confirmation naming our ACS and our
    request. Returns the latest instant the assertion would still be accepted at."""
    now = datetime.now(UTC)
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    conditions = assertion.find(_tag(SAML, "Conditions"))
    confirmations = [
        c.find(_tag(SAML, "SubjectConfirmationData"))
        for c in assertion.findall(f"{_tag(SAML, 'Subject')}/{_tag(SAML, 'SubjectConfirmation')}")
        if c.get("Method") == SCM_BEARER
    ]
    if not confirmations:
        raise SamlRefused("assertion", detail="no bearer confirmation")
    windows = [conditions, *confirmations]
    ends = [_instant(e, "NotOnOrAfter") for e in windows]
    if any(end is not None and end <= now - skew for end in ends):
        raise SamlRefused("expired", detail="NotOnOrAfter")
    if any((start := _instant(e, "NotBefore")) is not None and start > now + skew for e in windows):
        raise SamlRefused("not_yet_valid", detail="NotBefore")
    restrictions = (
        conditions.findall(_tag(SAML, "AudienceRestriction")) if conditions is not None else []
    )
    if not restrictions or any(
        sp.entity_id not in [(a.text or "").strip() for a in r.findall(_tag(SAML, "Audience"))]
        for r in restrictions
    ):
        raise SamlRefused("audience", detail="AudienceRestriction")
    for data in confirmations:
        if data is None or data.get("Recipient") != acs_url:
            raise SamlRefused("recipient", detail="Recipient")
        if data.get("InResponseTo") != request_id:
            raise SamlRefused("in_response_to", detail="SubjectConfirmationData")
    known = [end for end in ends if end is not None]
    if len(known) != len(ends):
        raise SamlRefused("conditions", detail="a NotOnOrAfter is missing")
    return max(known)


def _subject(assertion: Any, *, idp: SamlIdentityProvider, sp: SamlServiceProvider) -> str:
    name_id = assertion.subject.name_id
    if name_id is None or name_id.format != NAMEID_FORMAT_PERSISTENT:
        raise SamlRefused("name_id", detail=str(getattr(name_id, "format", ""))[:80])
    subject = name_id.text or ""
    if not (0 < len(subject) <= 255) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in subject):
        raise SamlRefused("name_id", detail="value")
    if name_id.name_qualifier not in (None, "", idp.entity_id):
        raise SamlRefused("name_id", detail="NameQualifier")
    if name_id.sp_name_qualifier not in (None, "", sp.entity_id):
        raise SamlRefused("name_id", detail="SPNameQualifier")
    return subject


def _session_index(assertion: Any) -> str:
    for statement in assertion.authn_statement or []:
        if statement.session_index:
            return str(statement.session_index)
    return ""


def identity_from_response(
    *, request: HttpRequest, idp: SamlIdentityProvider, flows: dict[str, Flow]
) -> tuple[AssertedIdentity, str]:
    """Finish a flow at the ACS: the identity the IdP asserted, and where the person was
    going. Raises :class:`SamlRefused` for anything that does not hold, having used the
    flow up (removed from ``flows``) once the response names it."""
    sp = _service_provider()
    posted = request.POST.get("SAMLResponse", "")
    if not posted or len(posted) > MAX_RESPONSE_CHARS:
        raise SamlRefused("malformed", detail="no SAMLResponse" if not posted else "too large")
    try:
        document = base64.b64decode("".join(posted.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRefused("malformed", detail="not base64") from None
    shape = _shape_check(document)
    if shape.issuer != idp.entity_id:
        raise SamlRefused("issuer", detail="not this IdP")
    if not shape.in_response_to:
        raise SamlRefused("unsolicited", detail="no InResponseTo")
    flow = flows.pop(shape.in_response_to, None)
    if flow is None:
        raise SamlRefused("in_response_to", detail="no such request in this browser")
    if flow.provider != idp.key:
        raise SamlRefused("in_response_to", detail="another IdP's request")
    if time.time() - flow.started > settings.SAFECHAT_SAML_FLOW_SECONDS:
        raise SamlRefused("in_response_to", detail="request too old")
    acs_url = sp.acs_url(idp.key)
    if shape.destination != acs_url:
        raise SamlRefused("destination", detail="Destination")
    client = _client(sp)
    try:
        response = client.parse_authn_request_response(
            posted, BINDING_HTTP_POST, outstanding={shape.in_response_to: flow.next_url}
        )
    except Exception as exc:  # pysaml2 raises bare Exceptions for failed checks too
        refused = _library_refusal(exc)
        if refused.reason == "assertion":
            # The signature held (it is checked first); say which condition did not.
            _validity(shape.assertion, sp=sp, acs_url=acs_url, request_id=shape.in_response_to)
        raise refused from None
    if response is None or response.assertion is None:
        raise SamlRefused("assertion", detail="not verified")
    assertion = response.assertion
    if assertion.signature is None:
        raise SamlRefused("unsigned")
    if not assertion.id or len(assertion.id) > 256:
        raise SamlRefused("assertion", detail="ID")
    valid_until = _validity(
        shape.assertion, sp=sp, acs_url=acs_url, request_id=shape.in_response_to
    ) + timedelta(seconds=CLOCK_SKEW_SECONDS)
    subject = _subject(assertion, idp=idp, sp=sp)
    contexts = tuple(str(ref) for ref, _authorities, _when in response.authn_info() if ref)
    attributes = _attributes(assertion)
    identity = AssertedIdentity(
        provider=idp,
        issuer=idp.entity_id,
        subject=subject,
        email=_first(attributes, idp.email_attribute, 254),
        # The IdP vouches for what it asserts: map only an attribute people cannot edit.
        email_verified=True,
        username=_first(attributes, idp.username_attribute, 150),
        first_name=_first(attributes, idp.first_name_attribute, 150),
        last_name=_first(attributes, idp.last_name_attribute, 150),
        authn_contexts=contexts,
        session_index=_session_index(assertion),
        groups=tuple(
            v
            for name in idp.groups_attribute
            for v in attributes.get(name, [])
            if 0 < len(v) <= 255
        )[:GROUPS_MAX],
        one_time=OneTimeAssertion(
            assertion_id=str(assertion.id),
            request_id=shape.in_response_to,
            valid_until=valid_until,
        ),
    )
    return identity, flow.next_url


# --- single logout, asked by the IdP (SAML Profiles 4.4, HTTP-Redirect binding) -------------

# A LogoutRequest inflated past this is refused (a deflate bomb stays small on the wire).
MAX_LOGOUT_REQUEST_BYTES = 64 * 1024
_REDIRECT_HASHES: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": hashes.SHA512(),
}


@dataclass(frozen=True)
class LogoutOrder:
    """An IdP's checked logout request: who (as an identity, for the link), which of its
    sessions (none named: all), and what to answer (its XML and relay state)."""

    identity: AssertedIdentity
    session_indexes: tuple[str, ...]
    request_xml: str
    relay_state: str


def _raw_query(request: HttpRequest) -> dict[str, list[str]]:
    """The query's parameters with their values exactly as sent (still URL-encoded): the
    redirect binding signs those bytes, which re-encoding would not always reproduce."""
    found: dict[str, list[str]] = {}
    for part in request.META.get("QUERY_STRING", "").split("&"):
        name, _, value = part.partition("=")
        if name:
            found.setdefault(name, []).append(value)
    return found


def _redirect_signature_check(query: dict[str, list[str]], idp: SamlIdentityProvider) -> None:
    """The HTTP-Redirect binding's signature (SAML Bindings 3.4.4.1) over
    ``SAMLRequest=..&RelayState=..&SigAlg=..`` as sent, by one of the IdP's certificates."""
    if any(len(values) > 1 for values in query.values()):
        raise SamlRefused("malformed", detail="a parameter twice")
    if "Signature" not in query or "SigAlg" not in query:
        raise SamlRefused("unsigned", detail="logout request")
    algorithm = _REDIRECT_HASHES.get(unquote_plus(query["SigAlg"][0]))
    if algorithm is None:
        raise SamlRefused("algorithm", detail=unquote_plus(query["SigAlg"][0])[:80])
    signed = "&".join(
        f"{name}={query[name][0]}"
        for name in ("SAMLRequest", "RelayState", "SigAlg")
        if name in query
    ).encode()
    try:
        signature = base64.b64decode(unquote_plus(query["Signature"][0]), validate=True)
    except (binascii.Error, ValueError):
        raise SamlRefused("signature", detail="not base64") from None
    for pem in idp.certificates:
        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signed, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, signed, ec.ECDSA(algorithm))
            else:
                continue
        except InvalidSignature:
            continue
        return
    raise SamlRefused("signature", detail="logout request")


def _inflate(encoded: str) -> bytes:
    try:
        deflated = base64.b64decode(unquote_plus(encoded), validate=True)
        inflater = zlib.decompressobj(-15)
        document = inflater.decompress(deflated, MAX_LOGOUT_REQUEST_BYTES)
    except (binascii.Error, ValueError, zlib.error):
        raise SamlRefused("malformed", detail="not deflated base64") from None
    if inflater.unconsumed_tail:
        raise SamlRefused("malformed", detail="too large")
    return document


def logout_request_read(*, request: HttpRequest, idp: SamlIdentityProvider) -> LogoutOrder:
    """Check an IdP's LogoutRequest (HTTP-Redirect): signed by the IdP with SHA-2 over the
    query as sent, from this IdP, to our SLO URL, issued within
    ``SAFECHAT_SAML_FLOW_SECONDS`` and not past its ``NotOnOrAfter`` (60 s of skew), naming
    a persistent NameID, no comment anywhere. Raises :class:`SamlRefused`."""
    sp = _service_provider()
    if not idp.slo_url:
        raise SamlRefused("not_configured", detail="no slo_url", status=404)
    query = _raw_query(request)
    if "SAMLRequest" not in query:
        raise SamlRefused("malformed", detail="no SAMLRequest")
    _redirect_signature_check(query, idp)
    document = _inflate(query["SAMLRequest"][0])
    root = _parse(document)
    if any(e.tag is Comment or e.tag is ProcessingInstruction for e in root.iter()):  # type: ignore[comparison-overlap]
        raise SamlRefused("comment", detail="logout request")
    if root.tag != _tag(SAMLP, "LogoutRequest"):
        raise SamlRefused("malformed", detail="not a LogoutRequest")
    issuer = root.find(_tag(SAML, "Issuer"))
    if issuer is None or (issuer.text or "").strip() != idp.entity_id:
        raise SamlRefused("issuer", detail="logout request")
    if root.get("Destination") != sp.slo_url(idp.key):
        raise SamlRefused("destination", detail="logout request")
    now = datetime.now(UTC)
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    issued = _instant(root, "IssueInstant")
    if issued is None or issued < now - skew - timedelta(
        seconds=settings.SAFECHAT_SAML_FLOW_SECONDS
    ):
        raise SamlRefused("expired", detail="IssueInstant")
    if issued > now + skew:
        raise SamlRefused("not_yet_valid", detail="IssueInstant")
    until = _instant(root, "NotOnOrAfter")
    if until is not None and until <= now - skew:
        raise SamlRefused("expired", detail="NotOnOrAfter")
    if root.find(_tag(SAML, "EncryptedID")) is not None:
        raise SamlRefused("encrypted", detail="EncryptedID")
    name_id = root.find(_tag(SAML, "NameID"))
    subject = (name_id.text or "") if name_id is not None else ""
    if (
        name_id is None
        or name_id.get("Format") != NAMEID_FORMAT_PERSISTENT
        or not (0 < len(subject) <= 255)
    ):
        raise SamlRefused("name_id", detail="logout request")
    request_id = root.get("ID") or ""
    if not (0 < len(request_id) <= 200):
        raise SamlRefused("malformed", detail="ID")
    indexes = tuple(
        (e.text or "").strip() for e in root.findall(_tag(SAMLP, "SessionIndex")) if e.text
    )
    identity = AssertedIdentity(
        provider=idp,
        issuer=idp.entity_id,
        subject=subject,
        one_time=OneTimeAssertion(
            assertion_id=f"logout:{request_id}",
            request_id=f"logout:{sha256_hex(idp.entity_id + chr(0) + request_id)}",
            valid_until=max(until or now, now)
            + skew
            + timedelta(seconds=settings.SAFECHAT_SAML_FLOW_SECONDS),
        ),
    )
    relay = unquote_plus(query["RelayState"][0]) if "RelayState" in query else ""
    return LogoutOrder(identity, indexes, document.decode(), relay)


def logout_response_url(*, idp: SamlIdentityProvider, order: LogoutOrder) -> str:
    """The IdP's SLO URL with SafeChat's LogoutResponse (status Success, in response to
    the request), signed with RSA-SHA256 (HTTP-Redirect binding), and the relay state."""
    client = _client(_service_provider())
    message = logout_request_from_string(order.request_xml)
    # Signed by the binding (the query), not in the XML: the key never leaves memory.
    response = client.create_logout_response(message, bindings=[BINDING_HTTP_REDIRECT], sign=False)
    info = client.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(response),
        idp.slo_url,
        order.relay_state or None,
        response=True,
        sign=True,
        sigalg=SIG_RSA_SHA256,
    )
    return str(dict(info["headers"])["Location"])


# --- logout started by SafeChat (SAML Profiles 4.4, SP-initiated, HTTP-Redirect) ----------

SESSION_LOGOUT_HINT = "safechat.saml.logout"  # {"provider", "subject", "session_index"}


def logout_hint_keep(*, request: HttpRequest, identity: AssertedIdentity) -> None:
    """Keep, in the session a SAML sign-in started, what a SafeChat sign-out needs to ask
    the IdP to end its session too: the IdP, the persistent NameID and the SessionIndex
    (server-side session store), where the IdP has a single logout service."""
    if isinstance(identity.provider, SamlIdentityProvider) and identity.provider.slo_url:
        request.session[SESSION_LOGOUT_HINT] = {
            "provider": identity.provider.key,
            "subject": identity.subject,
            "session_index": identity.session_index,
        }


def logout_hint_take(request: HttpRequest) -> dict[str, str] | None:
    """The SAML logout hint this session kept, if any (read before it is flushed)."""
    hint = request.session.get(SESSION_LOGOUT_HINT)
    names = ("provider", "subject", "session_index")
    if isinstance(hint, dict) and all(isinstance(hint.get(k), str) for k in names):
        return {k: hint[k] for k in names}
    return None


def logout_request_url(*, hint: dict[str, str]) -> str:
    """The IdP's single logout URL with SafeChat's ``LogoutRequest`` for the session
    ``hint`` names (its persistent NameID and SessionIndex; SAML Core 3.7.1), signed with
    RSA-SHA256 over the query (HTTP-Redirect binding, Bindings 3.4.4.1), valid for
    ``SAFECHAT_SAML_FLOW_SECONDS``. "" where the IdP is no longer configured or has no
    ``slo_url``: SafeChat's own sign-out has happened either way."""
    from saml2.saml import NameID

    idp = identity_provider_get(hint["provider"])
    if idp is None or not idp.slo_url:
        return ""
    client = _client(_service_provider())
    expire = datetime.now(UTC) + timedelta(seconds=settings.SAFECHAT_SAML_FLOW_SECONDS)
    _request_id, message = client.create_logout_request(
        idp.slo_url,
        idp.entity_id,
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=hint["subject"]),
        session_indexes=[hint["session_index"]] if hint["session_index"] else None,
        expire=expire.strftime("%Y-%m-%dT%H:%M:%SZ"),
        sign=False,
    )
    info = client.apply_binding(
        BINDING_HTTP_REDIRECT, str(message), idp.slo_url, None, sign=True, sigalg=SIG_RSA_SHA256
    )
    return str(dict(info["headers"])["Location"])
