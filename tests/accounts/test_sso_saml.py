"""Signing in through SAML 2.0, against a real IdP (pysaml2's own ``Server``, with keys made
for the run, reading SafeChat's SP metadata): the full flow, the second-factor policy both
ways, linking and creation, every bad response refused, audited, with nothing created, and
the IdP's single logout.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import Settings
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from accounts import saml
from accounts.models import (
    FederatedIdentity,
    ProviderMfaDevice,
    SamlAssertionUse,
    User,
    UserSession,
)
from accounts.roles import Role
from accounts.sso import SamlIdentityProvider, SamlServiceProvider
from audit.models import AuditEvent
from tests.accounts import federation
from tests.accounts.conftest import events
from tests.accounts.factories import make_totp_device, make_user
from tests.accounts.federation import (
    assert_nothing_created,
    assert_own_code_completes_the_sign_in,
    assert_provider_mfa_session,
    assert_second_factor_due,
    signed_in_as,
)
from tests.rooms.concurrency import postgresql_only, run_together
from tests.support.saml import Answer, SamlIdp, key_and_certificate

KEY = "bank"
IDP_ENTITY_ID = "https://idp.bank.example/saml/metadata"
SSO_URL = "https://idp.bank.example/saml/sso"
SP_ENTITY_ID = "http://testserver/accounts/saml/metadata/"
ACS_PATH = f"/accounts/saml/{KEY}/acs/"
ACS_URL = f"http://testserver{ACS_PATH}"
REFEDS_MFA = "https://refeds.org/profile/mfa"


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    """Keys made for this run: the IdP's, SafeChat's, and someone else's."""
    return {name: key_and_certificate(name) for name in ("idp", "sp", "rogue")}


def _idp_config(idp: SamlIdp, **overrides: Any) -> SamlIdentityProvider:
    configured = SamlIdentityProvider(
        key=KEY,
        name="Bank SAML",
        entity_id=idp.entity_id,
        sso_url=idp.sso_url,
        certificates=(idp.cert_pem,),
    )
    return dataclasses.replace(configured, **overrides)


def configure(settings: Settings, idp: SamlIdp, **overrides: Any) -> None:
    settings.SAFECHAT_SAML_IDPS = (_idp_config(idp, **overrides),)


@pytest.fixture
def idp(keys: dict[str, tuple[str, str]], settings: Settings, tmp_path: Any) -> SamlIdp:
    """SafeChat configured with the IdP (untrusted for MFA, no account creation)."""
    sp_key, sp_cert = keys["sp"]
    settings.SAFECHAT_SAML_SP = SamlServiceProvider(
        entity_id=SP_ENTITY_ID,
        base_url="http://testserver",
        private_key_pem=sp_key,
        certificate_pem=sp_cert,
    )
    settings.SAFECHAT_OIDC_PROVIDERS = ()
    key_pem, cert_pem = keys["idp"]
    server = SamlIdp(IDP_ENTITY_ID, SSO_URL, key_pem, cert_pem, tmp_path / "idp")
    configure(settings, server)
    return server


def sp_metadata() -> str:
    """SafeChat's SP metadata, as the IdP's administrator downloads it."""
    response = Client().get("/accounts/saml/metadata/")
    assert response.status_code == 200
    return response.content.decode()


def to_idp(client: Client, *, next_url: str = "/rooms/") -> str:
    """Leave SafeChat for the IdP; returns the redirect (AuthnRequest) URL."""
    response = client.get(f"/accounts/saml/{KEY}/start/?{urlencode({'next': next_url})}")
    assert response.status_code == 302, response.content
    return str(response["Location"])


def answer(client: Client, server: SamlIdp, subject: str, **options: Any) -> Answer:
    """The person signs in at the IdP, which answers SafeChat's request for ``client``."""
    return server.answer(to_idp(client), sp_metadata=sp_metadata(), subject=subject, **options)


def post(client: Client, found: Answer) -> Any:
    """The browser posts the IdP's answer to the ACS URL it names."""
    assert found.acs_url == ACS_URL
    return client.post(ACS_PATH, {"SAMLResponse": found.saml_response})


def sign_in(client: Client, server: SamlIdp, subject: str, **options: Any) -> Any:
    return post(client, answer(client, server, subject, **options))


def linked_person(username: str, *, with_factor: bool = True) -> tuple[User, str]:
    """A SafeChat account linked to its persistent NameID at the IdP."""
    user = make_user(username=username, email=f"{username}@bank.example")
    if with_factor:
        make_totp_device(user)
    subject = f"pid-{username}-7f3a"
    FederatedIdentity.objects.create(
        user=user,
        provider=KEY,
        protocol=FederatedIdentity.Protocol.SAML,
        issuer=IDP_ENTITY_ID,
        subject=subject,
        linked_via="admin",
    )
    return user, subject


def refusal(reason: str) -> AuditEvent:
    return federation.refusal(reason, provider=KEY)


# --- the sign-in page, the metadata, the request -------------------------------------------


@pytest.mark.django_db
def test_the_sign_in_page_offers_the_saml_idp(idp: SamlIdp) -> None:
    # when the sign-in page is shown
    response = Client().get("/accounts/sign-in/?next=/rooms/")

    # then it has a button for the IdP, carrying where the person was going
    assert b"Sign in with Bank SAML" in response.content
    assert b"/accounts/saml/bank/start/?next=/rooms/" in response.content


@pytest.mark.django_db
def test_the_sp_metadata_names_the_acs_the_key_and_what_safechat_requires(idp: SamlIdp) -> None:
    # when the IdP's administrator downloads SafeChat's metadata
    response = Client().get("/accounts/saml/metadata/")

    # then it is SAML metadata with our entity ID, the ACS (POST), our certificate, signed
    # requests and signed assertions, never cached
    document = response.content.decode()
    assert response["Content-Type"] == "application/samlmetadata+xml"
    assert "no-store" in response["Cache-Control"]
    assert f'entityID="{SP_ENTITY_ID}"' in document
    assert f'Location="{ACS_URL}"' in document
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" in document
    assert 'AuthnRequestsSigned="true"' in document
    assert 'WantAssertionsSigned="true"' in document
    assert "X509Certificate" in document
    assert "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" in document


@pytest.mark.django_db
def test_without_a_saml_idp_there_is_no_metadata(settings: Settings) -> None:
    settings.SAFECHAT_SAML_IDPS = ()
    settings.SAFECHAT_SAML_SP = None
    assert Client().get("/accounts/saml/metadata/").status_code == 404


@pytest.mark.django_db
def test_the_authn_request_is_signed_asks_for_a_persistent_id_and_names_our_acs(
    idp: SamlIdp,
) -> None:
    # when the person leaves for the IdP
    client = Client()
    url = to_idp(client)

    # then the redirect carries a request signed with RSA-SHA256 (HTTP-Redirect binding)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(SSO_URL + "?")
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    assert query["Signature"][0]
    # which the IdP reads, checking the signature with the key in our metadata
    request = idp.server(sp_metadata()).parse_authn_request(
        query["SAMLRequest"][0],
        relay_state=None,
        sigalg=query["SigAlg"][0],
        signature=query["Signature"][0],
    )
    message = request.message
    assert message.assertion_consumer_service_url == ACS_URL
    assert message.issuer.text == SP_ENTITY_ID
    assert message.name_id_policy.format == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    # and the flow is kept in its own cookie, sent cross-site only to /accounts/saml/
    cookie = client.cookies[saml.FLOW_COOKIE]
    assert cookie["samesite"] == "None"
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["path"] == "/accounts/saml/"


@pytest.mark.django_db
def test_a_forged_signature_on_the_request_is_refused_by_the_idp(idp: SamlIdp) -> None:
    # given SafeChat's request with its signature replaced
    query = parse_qs(urlsplit(to_idp(Client())).query)
    query["Signature"] = ["A" * len(query["Signature"][0])]

    # when the IdP reads it, then it refuses it (what an IdP that checks signatures does)
    with pytest.raises(Exception, match="signed"):
        idp.server(sp_metadata()).parse_authn_request(
            query["SAMLRequest"][0],
            relay_state=None,
            sigalg=query["SigAlg"][0],
            signature=query["Signature"][0],
        )


# --- the full flow, and the second factor --------------------------------------------


@pytest.mark.django_db
def test_a_linked_identity_signs_in_and_safechat_still_asks_for_its_own_second_factor(
    idp: SamlIdp,
) -> None:
    # given an account linked to its persistent NameID at the IdP, with a TOTP factor
    user, subject = linked_person("alice")
    client = Client()

    # when the person signs in at the IdP and its response is posted back
    response = sign_in(client, idp, subject, attributes={"mail": ["alice@bank.example"]})

    # then they are signed in, password-equivalent: the second factor is due
    # and the sign-in is audited with its channel, address and request id
    verified = assert_second_factor_due(client, response, user)
    assert verified.extra["issuer"] == IDP_ENTITY_ID
    assert verified.extra["subject"] == subject
    assert verified.extra["authn_context"] == [
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    ]
    assert FederatedIdentity.objects.get(user=user).last_used_at is not None
    # and the assertion is remembered until it expires, with the request it answered
    (use,) = SamlAssertionUse.objects.all()
    assert use.issuer == IDP_ENTITY_ID
    assert use.expires_at > datetime.now(UTC)
    # and the flow is used up
    assert saml.FLOW_COOKIE not in client.cookies or not client.cookies[saml.FLOW_COOKIE].value

    # when they then give SafeChat's own code, then the sign-in is complete
    assert_own_code_completes_the_sign_in(client, user)


@pytest.mark.django_db
def test_an_account_without_a_factor_is_sent_to_enrol(idp: SamlIdp) -> None:
    _, subject = linked_person("bruno", with_factor=False)
    response = sign_in(Client(), idp, subject)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/enrol/")


@pytest.mark.django_db
def test_a_trusted_idp_whose_authn_context_says_mfa_completes_the_sign_in(
    idp: SamlIdp, settings: Settings
) -> None:
    # given an IdP trusted for MFA, whose assertion says several factors were used
    configure(settings, idp, trust_mfa=True)
    user, subject = linked_person("carla")
    client = Client()

    # when the person signs in through it
    response = sign_in(client, idp, subject, authn_context=REFEDS_MFA)

    # then the session is verified, recorded as the provider's multi-factor sign-in
    assert_provider_mfa_session(client, response, user)
    assert events("auth.federated.verified")[0].extra["authn_context"] == [REFEDS_MFA]


@pytest.mark.parametrize(
    ("trust_mfa", "context"),
    [
        (True, "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"),
        (False, REFEDS_MFA),  # several factors, but the IdP is not trusted for it
        (True, "urn:example:loa:2"),  # a context not configured as MFA
    ],
)
@pytest.mark.django_db
def test_otherwise_the_saml_sign_in_is_password_equivalent(
    idp: SamlIdp, settings: Settings, trust_mfa: bool, context: str
) -> None:
    # given an IdP not trusted for MFA, or one whose assertion does not say MFA
    configure(settings, idp, trust_mfa=trust_mfa)
    user, subject = linked_person(f"dora{int(trust_mfa)}{len(context)}")

    # when the person signs in through it
    response = sign_in(Client(), idp, subject, authn_context=context)

    # then SafeChat's own second factor is still due
    assert response["Location"].startswith("/accounts/second-factor/")
    assert UserSession.objects.get(user=user).device_id == ""
    assert not ProviderMfaDevice.objects.exists()
    assert events("auth.login.succeeded") == []


@pytest.mark.django_db
def test_a_configured_authn_context_counts_as_mfa_for_a_trusted_idp(
    idp: SamlIdp, settings: Settings
) -> None:
    configure(settings, idp, trust_mfa=True, mfa_authn_contexts=("urn:example:loa:3",))
    user, subject = linked_person("edgar")
    response = sign_in(Client(), idp, subject, authn_context="urn:example:loa:3")
    assert response["Location"] == "/rooms/"
    assert UserSession.objects.get(user=user).verified_at is not None


# --- bad responses: clear 4xx, nothing created, audited --------------------------------------


def _past(assertion: Any) -> None:
    gone = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assertion.conditions.not_on_or_after = gone
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.not_on_or_after = gone


def _future(assertion: Any) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assertion.conditions.not_before = later


def _audience(assertion: Any) -> None:
    assertion.conditions.audience_restriction[0].audience[0].text = "https://other.example/sp"


def _no_audience(assertion: Any) -> None:
    assertion.conditions.audience_restriction = []


def _recipient(assertion: Any) -> None:
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.recipient = "https://other.example/acs"


def _no_lifetime(assertion: Any) -> None:
    assertion.conditions.not_on_or_after = None


def _other_issuer(assertion: Any) -> None:
    assertion.issuer.text = "https://idp.elsewhere.example/saml"


def _confirmation_for_another_request(assertion: Any) -> None:
    for confirmation in assertion.subject.subject_confirmation:
        confirmation.subject_confirmation_data.in_response_to = "id-another-request"


BAD_RESPONSES = [
    pytest.param({"tamper": _past}, "expired", id="expired"),
    pytest.param({"tamper": _future}, "not_yet_valid", id="not-yet-valid"),
    pytest.param({"tamper": _audience}, "audience", id="wrong-audience"),
    pytest.param({"tamper": _no_audience}, "audience", id="no-audience"),
    pytest.param({"tamper": _recipient}, "recipient", id="wrong-recipient"),
    pytest.param({"tamper": _no_lifetime}, "conditions", id="no-not-on-or-after"),
    pytest.param({"tamper": _other_issuer}, "issuer", id="assertion-from-another-issuer"),
    pytest.param(
        {"tamper": _confirmation_for_another_request}, "in_response_to", id="confirmation-irt"
    ),
    pytest.param({"destination": "https://other.example/acs"}, "destination", id="destination"),
    pytest.param({"in_response_to": None}, "unsolicited", id="unsolicited"),
    pytest.param({"in_response_to": "id-not-ours"}, "in_response_to", id="in-response-to"),
    pytest.param(
        {"sign_assertion": False, "sign_response": True}, "unsigned", id="only-response-signed"
    ),
    pytest.param({"sign_assertion": False}, "unsigned", id="nothing-signed"),
    pytest.param({"name_id_format": NAMEID_FORMAT_TRANSIENT}, "name_id", id="transient-name-id"),
]


@pytest.mark.parametrize(("options", "reason"), BAD_RESPONSES)
@pytest.mark.django_db
def test_a_bad_response_is_refused_and_nothing_is_created(
    idp: SamlIdp, options: dict[str, Any], reason: str
) -> None:
    # given a linked person, and an IdP that answers wrongly (signing what it sends)
    _, subject = linked_person(f"frank-{reason}")
    users_before = User.objects.count()
    client = Client()

    # when the person comes back with it
    response = sign_in(client, idp, subject, **options)

    # then SafeChat refuses it plainly, signs nobody in, and records why
    assert response.status_code == 400
    assert b"Sign-in not completed" in response.content
    assert_nothing_created(client, users_before)
    assert not SamlAssertionUse.objects.exists()
    refusal(reason)


@pytest.mark.django_db
def test_the_idps_own_error_is_refused(idp: SamlIdp) -> None:
    # given a sign-in under way, that the IdP answers with an error status
    client = Client()
    found = idp.refuse(to_idp(client), sp_metadata=sp_metadata())

    # when the browser posts it, then the page says so and the refusal is on record
    response = post(client, found)
    assert response.status_code == 400
    assert signed_in_as(client) is None
    assert refusal("provider_error").extra["detail"] == "AuthnFailed"


@pytest.mark.django_db
def test_an_assertion_signed_by_another_key_is_refused(
    idp: SamlIdp, keys: dict[str, tuple[str, str]]
) -> None:
    # given someone with their own key who answers as the IdP (same entity ID)
    _, subject = linked_person("gina")
    rogue_key, rogue_cert = keys["rogue"]
    rogue = SamlIdp(IDP_ENTITY_ID, SSO_URL, rogue_key, rogue_cert, idp.folder.parent / "rogue")
    users_before = User.objects.count()
    client = Client()

    # when their signed response is posted
    response = sign_in(client, rogue, subject)

    # then the signature is not the IdP's: refused
    assert response.status_code == 400
    assert_nothing_created(client, users_before)
    refusal("signature")


@pytest.mark.django_db
def test_a_sha1_signature_is_refused(idp: SamlIdp) -> None:
    # given an IdP that signs with RSA-SHA1 (pysaml2's own default)
    _, subject = linked_person("hana")
    idp.signing_algorithm, idp.digest_algorithm = SIG_RSA_SHA1, DIGEST_SHA1
    client = Client()

    # when its response is posted, then it is refused for its algorithm
    assert sign_in(client, idp, subject).status_code == 400
    assert signed_in_as(client) is None
    refusal("algorithm")


def _assertion_of(document: str) -> str:
    found = re.search(r"<(\w+):Assertion\b.*</\1:Assertion>", document, re.S)
    assert found is not None
    return found.group(0)


def _evil(signed: str, victim: str, subject: str, *, new_id: bool = True) -> str:
    """The signed assertion rewritten for the victim (its signature now covers nothing)."""
    evil = signed.replace(f">{subject}<", f">{victim}<")
    if new_id:
        evil = re.sub(r'(Assertion[^>]*?) ID="[^"]+"', r'\1 ID="id-evil-assertion"', evil, count=1)
    return evil


def _wrapped_in_extensions(document: str, victim: str, subject: str) -> str:
    # The evil assertion where the response's is; the signed one hidden in Extensions.
    signed = _assertion_of(document)
    prefix = re.search(r"<(\w+):Response\b", document)
    assert prefix is not None
    p = prefix.group(1)
    hidden = f"<{p}:Extensions>{signed}</{p}:Extensions>"
    status = document.index(f"<{p}:Status")
    moved = document[:status] + hidden + document[status:]
    return moved.replace(signed, _evil(signed, victim, subject), 2).replace(
        _evil(signed, victim, subject) + f"</{p}:Extensions>", signed + f"</{p}:Extensions>"
    )


def _same_id_twice(document: str, victim: str, subject: str) -> str:
    # The evil assertion keeps the signed one's ID; the signed one follows it.
    signed = _assertion_of(document)
    return document.replace(signed, _evil(signed, victim, subject, new_id=False) + signed)


def _signature_moved(document: str, victim: str, subject: str) -> str:
    # Only the evil assertion, carrying the signed one's signature (its reference dangles).
    signed = _assertion_of(document)
    return document.replace(signed, _evil(signed, victim, subject))


def _nested_in_evil(document: str, victim: str, subject: str) -> str:
    # The signed assertion nested inside the evil one's Advice.
    signed = _assertion_of(document)
    evil = _evil(signed, victim, subject)
    tag = re.match(r"<(\w+):Assertion", evil)
    assert tag is not None
    p = tag.group(1)
    closing = f"</{p}:Assertion>"
    nested = evil[: -len(closing)] + f"<{p}:Advice>{signed}</{p}:Advice>" + closing
    return document.replace(signed, nested)


@pytest.mark.parametrize(
    "wrap", [_wrapped_in_extensions, _same_id_twice, _signature_moved, _nested_in_evil]
)
@pytest.mark.django_db
def test_signature_wrapping_is_refused(idp: SamlIdp, wrap: Any) -> None:
    # given a victim's linked account, and an attacker with a valid assertion of their own
    victim, victim_subject = linked_person("ivan")
    _, attacker_subject = linked_person("mallory")
    client = Client()
    found = answer(client, idp, attacker_subject)
    users_before = User.objects.count()

    # when the attacker rewraps the signed assertion around one naming the victim
    response = post(client, found.with_xml(wrap(found.xml, victim_subject, attacker_subject)))

    # then it is refused: nobody is signed in, least of all the victim
    assert response.status_code == 400
    assert_nothing_created(client, users_before)
    event = refusal("wrapping")
    assert not event.target_id
    assert victim.is_active


@pytest.mark.django_db
def test_a_comment_injected_into_the_name_id_is_refused(idp: SamlIdp) -> None:
    # given a victim linked as "pid-victim", and an attacker whose IdP NameID extends it
    _, victim_subject = linked_person("victim")
    attacker_subject = victim_subject + ".attacker"
    client = Client()
    found = answer(client, idp, attacker_subject)
    # a comment keeps the signature valid (exclusive c14n drops it) and cuts the text in two
    injected = found.xml.replace(f">{attacker_subject}<", f">{victim_subject}<!---->.attacker<")
    assert injected != found.xml
    users_before = User.objects.count()

    # when it is posted
    response = post(client, found.with_xml(injected))

    # then it is refused; the victim is not signed in
    assert response.status_code == 400
    assert_nothing_created(client, users_before)
    refusal("comment")


@pytest.mark.django_db
def test_a_response_with_a_dtd_is_refused(idp: SamlIdp) -> None:
    _, subject = linked_person("jack")
    client = Client()
    found = answer(client, idp, subject)
    bomb = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]>' + found.xml.split("?>", 1)[-1]
    response = post(client, found.with_xml(bomb))
    assert response.status_code == 400
    refusal("malformed")


@pytest.mark.parametrize("posted", ["", "not base64 !", "PHg+PC94Pg=="])
@pytest.mark.django_db
def test_garbage_is_refused(idp: SamlIdp, posted: str) -> None:
    response = Client().post(ACS_PATH, {"SAMLResponse": posted})
    assert response.status_code == 400
    refusal("malformed")


@pytest.mark.django_db
def test_a_response_posted_in_another_browser_is_refused(idp: SamlIdp) -> None:
    # given a response to one browser's request (a login CSRF attempt)
    _, subject = linked_person("kate")
    found = answer(Client(), idp, subject)
    other = Client()
    users_before = User.objects.count()

    # when another browser posts it
    response = post(other, found)

    # then it is refused: that browser asked for no such sign-in
    assert response.status_code == 400
    assert_nothing_created(other, users_before)
    refusal("in_response_to")


@pytest.mark.django_db
def test_a_replayed_response_is_refused(idp: SamlIdp) -> None:
    # given a completed sign-in, and the flow cookie as it was before it
    user, subject = linked_person("lars")
    client = Client()
    found = answer(client, idp, subject)
    captured = client.cookies[saml.FLOW_COOKIE].value
    assert post(client, found).status_code == 302
    client.post(reverse("accounts:sign-out"))
    sessions_before = UserSession.objects.count()

    # when the same response is posted again in that browser, the flow is used up
    again = post(client, found)
    assert again.status_code == 400
    refusal("in_response_to")

    # and when it comes with the captured cookie too, the assertion itself is used up
    client.cookies[saml.FLOW_COOKIE] = captured
    replayed = post(client, found)

    # then refused, nobody signed in, one sign-in on record
    assert replayed.status_code == 403
    assert signed_in_as(client) is None
    assert UserSession.objects.count() == sessions_before
    assert len(events("auth.federated.verified")) == 1
    reasons = [e.extra["reason"] for e in events("auth.federated.refused")]
    assert reasons == ["in_response_to", "replayed"]
    assert SamlAssertionUse.objects.count() == 1
    assert user.is_active


@pytest.mark.django_db
def test_a_flow_older_than_allowed_is_refused(idp: SamlIdp, settings: Settings) -> None:
    _, subject = linked_person("mia")
    client = Client()
    found = answer(client, idp, subject)
    settings.SAFECHAT_SAML_FLOW_SECONDS = -1  # every flow is too old now
    assert post(client, found).status_code == 400
    refusal("in_response_to")


@pytest.mark.parametrize("step", ["start", "acs"])
@pytest.mark.django_db
def test_an_unknown_idp_is_a_404_on_the_record(idp: SamlIdp, step: str) -> None:
    # when an IdP that is not configured is named
    client = Client()
    if step == "start":
        response = client.get("/accounts/saml/elsewhere/start/")
    else:
        response = client.post("/accounts/saml/elsewhere/acs/", {"SAMLResponse": "eA=="})

    # then 404, audited, nothing created
    assert response.status_code == 404
    (event,) = events("auth.federated.refused")
    assert event.extra["reason"] == "unknown_provider"
    assert event.extra["provider"] == "elsewhere"
    assert signed_in_as(client) is None


@pytest.mark.django_db
def test_the_acs_takes_only_post(idp: SamlIdp) -> None:
    assert Client().get(ACS_PATH).status_code == 405


@pytest.mark.django_db
def test_answers_past_the_rate_limit_are_refused_unread(idp: SamlIdp, settings: Settings) -> None:
    # given a budget of two answers per minute from one address
    settings.SAFECHAT_SSO_RATE_LIMIT = (2, 60)
    client = Client()

    # when three are posted
    codes = [client.post(ACS_PATH, {"SAMLResponse": "eA=="}).status_code for _ in range(3)]

    # then the third is a 429 with Retry-After, and the throttling is recorded once
    assert codes == [400, 400, 429]
    reasons = [e.extra["reason"] for e in events("auth.federated.refused")]
    assert reasons == ["malformed", "throttled", "malformed"]
    assert int(client.post(ACS_PATH, {"SAMLResponse": "eA=="})["Retry-After"]) > 0
    assert len(events("auth.federated.refused")) == 3


# --- linking: never by e-mail; accounts created only where allowed ------------------------


@pytest.mark.django_db
def test_an_email_that_matches_an_unlinked_account_is_refused(
    idp: SamlIdp, settings: Settings
) -> None:
    # given a local account with an address, and someone at the IdP with that address and
    # an unlinked NameID (even where the IdP may create accounts)
    configure(settings, idp, create_accounts=True)
    victim = make_user(username="julia", email="julia@bank.example")
    users_before = User.objects.count()
    client = Client()

    # when that person signs in through the IdP
    response = sign_in(
        client,
        idp,
        "pid-someone-else",
        attributes={"mail": ["Julia@Bank.example"], "uid": ["julia2"]},
    )

    # then they are refused, the account is not touched, the attempt is on its record
    assert response.status_code == 403
    assert b"not linked to this identity" in response.content
    assert_nothing_created(client, users_before)
    assert not FederatedIdentity.objects.exists()
    assert refusal("unlinked_email").target_id == str(victim.pk)


@pytest.mark.django_db
def test_an_identity_linked_to_no_account_is_refused_where_accounts_are_not_created(
    idp: SamlIdp,
) -> None:
    users_before = User.objects.count()
    client = Client()
    response = sign_in(client, idp, "pid-nobody", attributes={"mail": ["kim@elsewhere.example"]})
    assert response.status_code == 403
    assert_nothing_created(client, users_before)
    refusal("not_linked")


@pytest.mark.django_db
def test_where_allowed_the_first_sign_in_creates_the_account(
    idp: SamlIdp, settings: Settings
) -> None:
    # given an IdP that may create accounts
    configure(settings, idp, create_accounts=True)
    client = Client()

    # when a new person signs in through it
    response = sign_in(
        client,
        idp,
        "pid-lena-01",
        attributes={"uid": ["Lena.Smith"], "mail": ["lena@bank.example"], "givenName": ["Lena"]},
    )

    # then an account is created (PRECIS username), linked by the NameID, asked to enrol
    assert response["Location"].startswith("/accounts/enrol/")
    user = User.objects.get(username="lena.smith")
    assert (user.email, user.first_name) == ("lena@bank.example", "Lena")
    assert not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == [Role.MEMBER.value]
    link = FederatedIdentity.objects.get(user=user)
    assert (link.protocol, link.issuer, link.subject, link.linked_via) == (
        "saml",
        IDP_ENTITY_ID,
        "pid-lena-01",
        "created",
    )
    assert events("account.created")[0].extra["via"] == "federated"


@pytest.mark.django_db
def test_a_created_username_that_looks_like_a_taken_one_is_refused(
    idp: SamlIdp, settings: Settings
) -> None:
    configure(settings, idp, create_accounts=True)
    make_user(username="mona", email="mona@bank.example")
    users_before = User.objects.count()
    client = Client()
    response = sign_in(client, idp, "pid-mona-2", attributes={"uid": ["m\u043ena"]})
    assert response.status_code == 403
    assert_nothing_created(client, users_before)
    refusal("username_taken")


@pytest.mark.django_db
def test_a_security_admin_links_a_saml_identity_and_its_person_signs_in(
    idp: SamlIdp, admin_client: Client
) -> None:
    # given a local account, and its person's persistent NameID at the IdP
    user = make_user(username="olga", email="olga@bank.example")
    make_totp_device(user)

    # when a security admin links them on the users page
    response = admin_client.post(
        "/accounts/admin/identities/link/",
        {"username": "olga", "provider": KEY, "subject": "pid-olga-9"},
    )

    # then the link is a SAML one at the IdP's entity ID, and the person signs in
    assert response.status_code == 302
    link = FederatedIdentity.objects.get(user=user)
    assert (link.protocol, link.issuer) == ("saml", IDP_ENTITY_ID)
    client = Client()
    assert sign_in(client, idp, "pid-olga-9")["Location"].startswith("/accounts/second-factor/")
    assert signed_in_as(client) == user.pk


# --- single logout asked by the IdP -----------------------------------------------------------

SLO_URL = "https://idp.bank.example/saml/slo"
SLO_PATH = f"/accounts/saml/{KEY}/slo/"


def signed_in_with_slo(settings: Settings, server: SamlIdp, username: str) -> tuple[Client, Any]:
    """An IdP with single logout, and a person signed in through it (second factor due)."""
    configure(settings, server, slo_url=SLO_URL)
    _, subject = linked_person(username)
    client = Client()
    assert sign_in(client, server, subject).status_code == 302
    row = UserSession.objects.get(user__username=username)
    return client, row


def logout(server: SamlIdp, row: Any, **options: Any) -> str:
    url = server.logout_url(
        sp_metadata=sp_metadata(),
        destination=options.pop("destination", f"http://testserver{SLO_PATH}"),
        subject=row.federated_identity.subject,
        **options,
    )
    assert url.startswith(f"http://testserver{SLO_PATH}?"), url
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.django_db
def test_the_sp_metadata_offers_single_logout_for_an_idp_that_has_it(
    idp: SamlIdp, settings: Settings
) -> None:
    configure(settings, idp, slo_url=SLO_URL)
    assert f'Location="http://testserver{SLO_PATH}"' in sp_metadata()


@pytest.mark.django_db
def test_the_idps_logout_ends_the_session_it_signed_in(
    idp: SamlIdp, settings: Settings, keys: dict[str, tuple[str, str]]
) -> None:
    # given a person signed in through the IdP, the session remembering the IdP's index
    client, row = signed_in_with_slo(settings, idp, "peter")
    assert row.federated_session_index
    other = make_user(username="quentin")  # someone else's session stays
    other_session = UserSession.objects.create(
        user=other, key_hash="x" * 64, last_seen_at=row.last_seen_at
    )

    # when the IdP sends the browser with its signed logout request for that session
    response = client.get(logout(idp, row, session_indexes=[row.federated_session_index]))

    # then the session has ended, the IdP gets a signed LogoutResponse (with its relay
    # state), and the logout is on record
    assert response.status_code == 302
    answer_url = response["Location"]
    assert answer_url.startswith(SLO_URL + "?")
    query = parse_qs(urlsplit(answer_url).query)
    assert query["RelayState"] == ["after-logout"]
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    server = idp.server(sp_metadata())
    sp_cert = "".join(line for line in keys["sp"][1].splitlines() if not line.startswith("-----"))
    flat = {name: values[0] for name, values in query.items()}
    assert verify_redirect_signature(flat, server.sec.sec_backend, cert=sp_cert)
    parsed = server.parse_logout_request_response(
        query["SAMLResponse"][0], binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    )
    assert parsed.response.status.status_code.value.endswith(":Success")
    row.refresh_from_db()
    assert row.ended_at is not None
    assert row.end_reason == "provider_logout"
    other_session.refresh_from_db()
    assert other_session.ended_at is None
    assert client.get("/rooms/")["Location"].startswith("/accounts/sign-in/")
    (event,) = events("auth.federated.logout")
    assert event.extra["sessions_ended"] == 1
    assert event.target_id == str(row.user_id)


@pytest.mark.django_db
def test_a_logout_for_another_session_index_ends_nothing(idp: SamlIdp, settings: Settings) -> None:
    client, row = signed_in_with_slo(settings, idp, "rita")
    response = client.get(logout(idp, row, session_indexes=["id-another-session"]))
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.ended_at is None
    assert events("auth.federated.logout")[0].extra["sessions_ended"] == 0


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"sign": False}, "unsigned"),
        ({"destination": "http://testserver/accounts/saml/bank/slo/?x=1"}, "destination"),
    ],
)
@pytest.mark.django_db
def test_a_bad_logout_request_ends_nothing(
    idp: SamlIdp, settings: Settings, options: dict[str, Any], reason: str
) -> None:
    client, row = signed_in_with_slo(settings, idp, f"sam-{reason}")
    url = logout(idp, row, **options) if reason != "destination" else None
    if url is None:
        # signed for another destination, then sent to ours
        other = idp.logout_url(
            sp_metadata=sp_metadata(), destination="https://other.example/slo",
            subject=row.federated_identity.subject,
        )  # fmt: skip
        url = f"{SLO_PATH}?{urlsplit(other).query}"
    response = client.get(url)
    assert response.status_code == 400
    row.refresh_from_db()
    assert row.ended_at is None
    assert events("auth.federated.logout") == []
    assert refusal(reason).extra["provider"] == KEY


@pytest.mark.django_db
def test_a_logout_request_signed_by_another_key_ends_nothing(
    idp: SamlIdp, settings: Settings, keys: dict[str, tuple[str, str]]
) -> None:
    client, row = signed_in_with_slo(settings, idp, "tom")
    rogue_key, rogue_cert = keys["rogue"]
    rogue = SamlIdp(IDP_ENTITY_ID, SSO_URL, rogue_key, rogue_cert, idp.folder.parent / "rogue")
    response = client.get(logout(rogue, row))
    assert response.status_code == 400
    row.refresh_from_db()
    assert row.ended_at is None
    refusal("signature")


@pytest.mark.django_db
def test_a_replayed_logout_request_is_refused(idp: SamlIdp, settings: Settings) -> None:
    client, row = signed_in_with_slo(settings, idp, "ulla")
    url = logout(idp, row)
    assert client.get(url).status_code == 302
    assert client.get(url).status_code == 403
    assert len(events("auth.federated.logout")) == 1
    assert refusal("replayed")


@pytest.mark.django_db
def test_an_idp_without_single_logout_takes_no_logout_request(idp: SamlIdp) -> None:
    _, subject = linked_person("vera")
    client = Client()
    sign_in(client, idp, subject)
    row = UserSession.objects.get(user__username="vera")
    response = client.get(logout(idp, row))
    assert response.status_code == 404
    row.refresh_from_db()
    assert row.ended_at is None


# --- one assertion, one sign-in, also at the same instant ------------------------------------


@postgresql_only("two posts of one assertion race only where rows lock one by one")
@pytest.mark.parametrize("round_", range(3))
@pytest.mark.django_db(transaction=True)
def test_two_posts_of_one_assertion_at_the_same_instant_sign_in_once(
    idp: SamlIdp, round_: int
) -> None:
    # given a response, and two browsers holding its flow (the second a stolen copy)
    _, subject = linked_person(f"nils{round_}")
    first = Client()
    found = answer(first, idp, subject)
    second = Client()
    second.cookies[saml.FLOW_COOKIE] = first.cookies[saml.FLOW_COOKIE].value

    # when both post it at the same instant
    outcomes = run_together(lambda: post(first, found), lambda: post(second, found))

    # then exactly one signs in; the other is refused as a replay, and both are on record
    assert [o.error for o in outcomes] == [None, None]
    assert sorted(o.value.status_code for o in outcomes) == [302, 403]
    assert len(events("auth.federated.verified")) == 1
    assert [e.extra["reason"] for e in events("auth.federated.refused")] == ["replayed"]
    assert SamlAssertionUse.objects.count() == 1
    assert UserSession.objects.count() == 1


# --- logout started by SafeChat ---------------------------------------------------------------


@pytest.mark.django_db
def test_signing_out_sends_the_idp_a_signed_logout_request_for_that_session(
    idp: SamlIdp, settings: Settings, keys: dict[str, tuple[str, str]]
) -> None:
    # given a person signed in through an IdP with single logout
    client, row = signed_in_with_slo(settings, idp, "rachel")

    # when they sign out of SafeChat
    response = client.post("/accounts/sign-out/")

    # then SafeChat's session is over first, and the browser goes to the IdP's SLO URL
    # with a LogoutRequest for that NameID and SessionIndex, signed with SafeChat's key
    row.refresh_from_db()
    assert row.ended_at is not None
    assert signed_in_as(client) is None
    assert events("auth.logout")[-1].extra == {"reason": "signed_out", "provider_logout": KEY}
    location = response["Location"]
    assert location.startswith(SLO_URL + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    server = idp.server(sp_metadata())
    sp_cert = "".join(line for line in keys["sp"][1].splitlines() if not line.startswith("-----"))
    assert verify_redirect_signature(query, server.sec.sec_backend, cert=sp_cert)
    message = server.parse_logout_request(
        query["SAMLRequest"],
        binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    ).message
    assert message.issuer.text == SP_ENTITY_ID
    assert message.destination == SLO_URL
    assert message.name_id.text == row.federated_identity.subject
    assert message.name_id.format == NAMEID_FORMAT_PERSISTENT
    assert [i.text for i in message.session_index] == [row.federated_session_index]
    # and the IdP's answer brings the browser back to the sign-in page, changing nothing
    back = client.get(f"{SLO_PATH}?SAMLResponse=anything")
    assert back["Location"] == "/accounts/sign-in/"


@pytest.mark.django_db
def test_without_single_logout_a_saml_sign_out_stays_here(idp: SamlIdp) -> None:
    user, subject = linked_person("steve")
    client = Client()
    sign_in(client, idp, subject)

    response = client.post("/accounts/sign-out/")

    assert response["Location"] == "/accounts/sign-in/"
    assert not UserSession.objects.filter(user=user, ended_at__isnull=True).exists()
