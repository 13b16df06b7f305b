"""Signing in through OpenID Connect, against a real provider (django-oauth-toolkit in its
own process, ``tests/oidc_provider``): the full flow, the second-factor policy both ways,
account linking and creation, and every bad answer refused, audited, with nothing created.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from accounts import services
from accounts.models import FederatedIdentity, ProviderMfaDevice, User, UserSession
from accounts.roles import Role
from accounts.sso import OidcProvider
from safechat.actions import Refused
from tests.accounts.conftest import events
from tests.accounts.factories import make_totp_device, make_user
from tests.accounts.federation import (
    assert_nothing_created,
    assert_own_code_completes_the_sign_in,
    assert_provider_mfa_session,
    assert_second_factor_due,
    refusal,
    signed_in_as,
)
from tests.support.oidc import OidcProviderServer

CLIENT_ID = "safechat-tests"
CLIENT_SECRET = "provider-client-secret-for-tests"  # the test provider's, made up here
KEY = "bank"
CALLBACK = f"http://testserver/accounts/sso/{KEY}/callback/"


def _provider(server: OidcProviderServer, **overrides: Any) -> OidcProvider:
    provider = OidcProvider(
        key=KEY,
        name="Bank SSO",
        issuer=server.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        algorithms=("RS256",),
    )
    return dataclasses.replace(provider, **overrides)


@pytest.fixture
def provider(oidc_provider: OidcProviderServer, settings: Settings) -> Iterator[OidcProviderServer]:
    """SafeChat configured with the provider (untrusted for MFA, no account creation)."""
    oidc_provider.client_register(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=CALLBACK
    )
    oidc_provider.behave()
    settings.SAFECHAT_OIDC_PROVIDERS = (_provider(oidc_provider),)
    yield oidc_provider
    oidc_provider.behave()


def configure(settings: Settings, server: OidcProviderServer, **overrides: Any) -> None:
    settings.SAFECHAT_OIDC_PROVIDERS = (_provider(server, **overrides),)


def to_provider(client: Client, *, next_url: str = "/rooms/") -> str:
    """Leave SafeChat for the provider; returns the authorisation URL."""
    response = client.get(f"/accounts/sso/{KEY}/start/?{urlencode({'next': next_url})}")
    assert response.status_code == 302, response.content
    return str(response["Location"])


def callback_url(server: OidcProviderServer, username: str, authorize_url: str) -> str:
    """The person signs in at the provider, which sends the browser back: that URL
    (path and query, for the test client)."""
    answer = server.browser(username).get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(CALLBACK), location
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def sign_in(client: Client, server: OidcProviderServer, username: str) -> Any:
    return client.get(callback_url(server, username, to_provider(client)))


def linked_person(
    server: OidcProviderServer, username: str, *, with_factor: bool = True
) -> tuple[User, str]:
    """A SafeChat account linked to a person at the provider (as a security admin would)."""
    user = make_user(username=username, email=f"{username}@bank.example")
    if with_factor:
        make_totp_device(user)
    subject = server.person(username, email=f"{username}@bank.example")
    FederatedIdentity.objects.create(
        user=user, provider=KEY, issuer=server.issuer, subject=subject, linked_via="admin"
    )
    return user, subject


# --- the sign-in page ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sign_in_page_offers_each_configured_provider(provider: OidcProviderServer) -> None:
    # when the sign-in page is shown
    response = Client().get("/accounts/sign-in/?next=/rooms/")

    # then it has a button for the provider, carrying where the person was going
    assert response.status_code == 200
    assert b"Sign in with Bank SSO" in response.content
    assert b"/accounts/sso/bank/start/?next=/rooms/" in response.content


@pytest.mark.django_db
def test_without_providers_the_sign_in_page_is_as_before(settings: Settings) -> None:
    # given no provider configured (the default)
    settings.SAFECHAT_OIDC_PROVIDERS = ()

    # when the sign-in page is shown
    response = Client().get("/accounts/sign-in/")

    # then there is no federated sign-in on it
    assert response.status_code == 200
    assert b"Sign in with" not in response.content


# --- the full flow, and the second factor --------------------------------------------


@pytest.mark.django_db
def test_the_authorisation_request_uses_the_code_flow_with_pkce_state_and_nonce(
    provider: OidcProviderServer,
) -> None:
    # when the person leaves for the provider
    url = to_provider(Client())

    # then the request is the code flow with PKCE (S256), a state and a nonce
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(provider.issuer + "/authorize/")
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0]
    assert query["nonce"][0]
    assert "openid" in query["scope"][0].split()


@pytest.mark.django_db
def test_a_linked_identity_signs_in_and_safechat_still_asks_for_its_own_second_factor(
    provider: OidcProviderServer,
) -> None:
    # given an account linked to its identity at the provider, with a TOTP factor
    user, subject = linked_person(provider, "alice")
    client = Client()

    # when the person signs in at the provider and comes back
    response = sign_in(client, provider, "alice")

    # then they are signed in, password-equivalent: the second factor is due
    # and the sign-in is audited with its channel, address and request id
    verified = assert_second_factor_due(client, response, user)
    assert verified.extra["subject"] == subject
    assert FederatedIdentity.objects.get(user=user).last_used_at is not None

    # when they then give SafeChat's own code, then the sign-in is complete
    assert_own_code_completes_the_sign_in(client, user)


@pytest.mark.django_db
def test_an_account_without_a_factor_is_sent_to_enrol(provider: OidcProviderServer) -> None:
    # given a linked account that has no second factor yet
    linked_person(provider, "bruno", with_factor=False)
    client = Client()

    # when the person signs in through the provider
    response = sign_in(client, provider, "bruno")

    # then they enrol a factor before anything else
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/enrol/")


@pytest.mark.django_db
def test_a_trusted_provider_that_asserts_several_factors_completes_the_sign_in(
    provider: OidcProviderServer, settings: Settings
) -> None:
    # given a provider trusted for MFA, whose token says several factors were used
    configure(settings, provider, trust_mfa=True)
    user, _ = linked_person(provider, "carla")
    provider.behave(claims={"amr": ["pwd", "mfa"]})
    client = Client()

    # when the person signs in through it
    response = sign_in(client, provider, "carla")

    # then the session is verified, recorded as the provider's multi-factor sign-in
    device = assert_provider_mfa_session(client, response, user)
    assert events("auth.federated.verified")[0].extra["amr"] == ["pwd", "mfa"]
    # and the record is none of the person's own factors
    from accounts.selectors import user_factors, user_has_factor

    assert device not in user_factors(user=user)
    assert user_has_factor(user=user)  # the TOTP device, not the provider's record


@pytest.mark.parametrize(
    ("trust_mfa", "claims"),
    [
        (True, {"amr": ["pwd"]}),  # trusted, but one factor
        (True, {}),  # trusted, says nothing
        (False, {"amr": ["pwd", "mfa"]}),  # several factors, but not trusted for it
        (True, {"acr": "urn:example:loa:1"}),  # an acr not configured as MFA
    ],
)
@pytest.mark.django_db
def test_otherwise_the_provider_sign_in_is_password_equivalent(
    provider: OidcProviderServer, settings: Settings, trust_mfa: bool, claims: dict[str, Any]
) -> None:
    # given a provider that is not trusted for MFA, or does not assert it
    configure(settings, provider, trust_mfa=trust_mfa, mfa_acr=("urn:example:loa:3",))
    user, _ = linked_person(provider, f"dora{int(trust_mfa)}{len(claims)}")
    provider.behave(claims=claims)
    client = Client()

    # when the person signs in through it
    response = sign_in(client, provider, user.username)

    # then SafeChat's own second factor is still due
    assert response["Location"].startswith("/accounts/second-factor/")
    assert UserSession.objects.get(user=user).device_id == ""
    assert not ProviderMfaDevice.objects.filter(user=user).exists()
    assert events("auth.login.succeeded") == []


@pytest.mark.django_db
def test_a_configured_acr_counts_as_several_factors_for_a_trusted_provider(
    provider: OidcProviderServer, settings: Settings
) -> None:
    # given a trusted provider whose token carries an acr configured as MFA
    configure(settings, provider, trust_mfa=True, mfa_acr=("urn:example:loa:3",))
    user, _ = linked_person(provider, "edgar")
    provider.behave(claims={"acr": "urn:example:loa:3"})

    # when the person signs in through it
    response = sign_in(Client(), provider, "edgar")

    # then the sign-in is complete
    assert response["Location"] == "/rooms/"
    assert UserSession.objects.get(user=user).verified_at is not None


# --- bad answers: clear 4xx, nothing created, audited -------------------------------------


BAD_TOKENS = [
    pytest.param({"claims": {"aud": "another-application"}}, "audience", id="wrong-audience"),
    pytest.param({"claims": {"aud": [CLIENT_ID, "another"]}}, "audience", id="extra-audience"),
    pytest.param({"claims": {"exp": 1_000_000_000}}, "expired", id="expired"),
    pytest.param({"claims": {"nonce": "not-this-sign-in"}}, "nonce", id="mismatched-nonce"),
    pytest.param({"drop": ["nonce"]}, "nonce", id="missing-nonce"),
    pytest.param({"claims": {"iss": "http://127.0.0.1:1/o"}}, "issuer", id="wrong-issuer"),
    pytest.param({"sign": "none"}, "algorithm", id="alg-none"),
    pytest.param({"sign": "HS256-public-key"}, "algorithm", id="hs256-with-the-rsa-key"),
    pytest.param({"sign": "forged"}, "signature", id="forged-signature"),
]


@pytest.mark.parametrize(("behaviour", "reason"), BAD_TOKENS)
@pytest.mark.django_db
def test_a_bad_id_token_is_refused_and_nothing_is_created(
    provider: OidcProviderServer, behaviour: dict[str, Any], reason: str
) -> None:
    # given a linked person, and a provider that issues a bad ID token
    linked_person(provider, f"frank-{reason}")
    provider.behave(**behaviour)
    users_before = User.objects.count()
    client = Client()

    # when the person comes back with it
    response = sign_in(client, provider, f"frank-{reason}")

    # then SafeChat refuses it plainly, signs nobody in, and records why
    assert response.status_code == 400
    assert b"Sign-in not completed" in response.content
    assert_nothing_created(client, users_before)
    refusal(reason)


@pytest.mark.django_db
def test_a_tampered_state_is_refused(provider: OidcProviderServer) -> None:
    # given a person back from the provider, with the state in the URL changed
    linked_person(provider, "gina")
    client = Client()
    url = callback_url(provider, "gina", to_provider(client))
    tampered = url.replace("state=", "state=x")
    users_before = User.objects.count()

    # when the browser arrives with it
    response = client.get(tampered)

    # then it is refused, and nothing is created
    assert response.status_code == 400
    assert_nothing_created(client, users_before)
    refusal("state")


@pytest.mark.django_db
def test_a_callback_in_another_browser_is_refused(provider: OidcProviderServer) -> None:
    # given a callback URL meant for one browser's sign-in (a login CSRF attempt)
    linked_person(provider, "hugo")
    url = callback_url(provider, "hugo", to_provider(Client()))
    other = Client()
    users_before = User.objects.count()

    # when another browser follows it
    response = other.get(url)

    # then it is refused: its session started no such sign-in
    assert response.status_code == 400
    assert_nothing_created(other, users_before)
    refusal("state")


@pytest.mark.django_db
def test_a_replayed_callback_is_refused(provider: OidcProviderServer) -> None:
    # given a completed sign-in
    user, _ = linked_person(provider, "iris")
    client = Client()
    url = callback_url(provider, "iris", to_provider(client))
    assert client.get(url).status_code == 302
    client.post(reverse("accounts:sign-out"))
    sessions_before = UserSession.objects.count()

    # when the same callback (code, state, nonce) is sent again
    response = client.get(url)

    # then it is refused: the flow was used up
    assert response.status_code == 400
    assert signed_in_as(client) is None
    assert UserSession.objects.count() == sessions_before
    assert len(events("auth.federated.verified")) == 1
    refusal("state")
    assert user.is_active


@pytest.mark.django_db
def test_the_providers_own_error_is_refused(provider: OidcProviderServer) -> None:
    # given a sign-in under way
    client = Client()
    state = parse_qs(urlsplit(to_provider(client)).query)["state"][0]

    # when the provider sends the person back with an error (they cancelled)
    response = client.get(
        f"/accounts/sso/{KEY}/callback/?{urlencode({'error': 'access_denied', 'state': state})}"
    )

    # then the page says so, and the refusal is on the record
    assert response.status_code == 400
    assert refusal("provider_error").extra["detail"] == "access_denied"


@pytest.mark.parametrize("step", ["start", "callback"])
@pytest.mark.django_db
def test_an_unknown_provider_is_a_404_on_the_record(
    provider: OidcProviderServer, step: str
) -> None:
    # when a provider that is not configured is named
    response = Client().get(f"/accounts/sso/elsewhere/{step}/?state=x&code=y")

    # then 404, audited
    assert response.status_code == 404
    assert refusal("unknown_provider").extra["provider"] == "elsewhere"


@pytest.mark.django_db
def test_an_unreachable_provider_is_a_502(settings: Settings) -> None:
    # given a provider whose discovery document cannot be fetched
    settings.SAFECHAT_OIDC_PROVIDERS = (
        OidcProvider(
            key=KEY, name="Down", issuer="http://127.0.0.1:9/o", client_id="x", client_secret="y"
        ),
    )

    # when someone starts a sign-in with it
    response = Client().get(f"/accounts/sso/{KEY}/start/")

    # then a clear 502, audited
    assert response.status_code == 502
    refusal("provider_unreachable")


# --- linking: never by e-mail; accounts created only where allowed ------------------------


@pytest.mark.django_db
def test_an_email_that_matches_an_unlinked_account_is_refused(
    provider: OidcProviderServer, settings: Settings
) -> None:
    # given a local account with an address, and someone at the provider with that address
    # (even where the provider may create accounts)
    configure(settings, provider, create_accounts=True)
    victim = make_user(username="julia", email="julia@bank.example")
    provider.person("julia-at-idp", email="Julia@Bank.example")
    users_before = User.objects.count()
    client = Client()

    # when that person signs in through the provider
    response = sign_in(client, provider, "julia-at-idp")

    # then they are refused, the account is not touched, and the attempt is on its record
    assert response.status_code == 403
    assert b"not linked to this identity" in response.content
    assert_nothing_created(client, users_before)
    assert not FederatedIdentity.objects.exists()
    event = refusal("unlinked_email")
    assert event.target_id == str(victim.pk)


@pytest.mark.django_db
def test_an_identity_linked_to_no_account_is_refused_where_accounts_are_not_created(
    provider: OidcProviderServer,
) -> None:
    # given someone at the provider with no SafeChat account (creation off, the default)
    provider.person("kim", email="kim@elsewhere.example")
    users_before = User.objects.count()
    client = Client()

    # when they sign in through the provider
    response = sign_in(client, provider, "kim")

    # then they are refused and nothing is created
    assert response.status_code == 403
    assert_nothing_created(client, users_before)
    assert not FederatedIdentity.objects.exists()
    refusal("not_linked")


@pytest.mark.django_db
def test_where_allowed_the_first_sign_in_creates_the_account_in_safechats_username_form(
    provider: OidcProviderServer, settings: Settings
) -> None:
    # given a provider that may create accounts
    configure(settings, provider, create_accounts=True)
    subject = provider.person("Lena.Smith", email="lena@bank.example", first_name="Lena")
    client = Client()

    # when a new person signs in through it
    response = sign_in(client, provider, "Lena.Smith")

    # then an account is created (PRECIS username), linked, and asked to enrol a factor
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/enrol/")
    user = User.objects.get(username="lena.smith")
    assert user.email == "lena@bank.example"
    assert user.first_name == "Lena"
    assert not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == [Role.MEMBER.value]
    link = FederatedIdentity.objects.get(user=user)
    assert (link.issuer, link.subject, link.linked_via) == (provider.issuer, subject, "created")
    assert signed_in_as(client) == user.pk
    assert events("account.created")[0].extra["via"] == "federated"
    assert events("account.identity.linked")[0].extra["via"] == "created"

    # when they sign in again, the same account is found by its link
    again = Client()
    sign_in(again, provider, "Lena.Smith")
    assert signed_in_as(again) == user.pk
    assert User.objects.filter(username="lena.smith").count() == 1


@pytest.mark.django_db
def test_a_name_from_the_provider_holding_a_username_marker_is_left_out(
    provider: OidcProviderServer, settings: Settings
) -> None:
    # given a provider that may create accounts, whose person's given name holds an "@"
    configure(settings, provider, create_accounts=True)
    provider.person("Nina", email="nina@bank.example", first_name="Nina (@lena.smith)")

    # when they first sign in
    sign_in(Client(), provider, "Nina")

    # then the account is made without that name, which would read as someone else's
    assert User.objects.get(username="nina").first_name == ""


@pytest.mark.parametrize(
    "claimed",
    # the same name in another case; with a Cyrillic small o, U+043E (a look-alike)
    ["Mona", "m\u043ena"],
)
@pytest.mark.django_db
def test_a_created_username_that_collides_is_refused_never_merged(
    provider: OidcProviderServer, settings: Settings, claimed: str
) -> None:
    # given an account "mona", and a new person at the provider whose username looks like it
    configure(settings, provider, create_accounts=True)
    make_user(username="mona", email="mona@bank.example")
    provider.person(claimed, email="other-mona@elsewhere.example")
    users_before = User.objects.count()
    client = Client()

    # when they sign in through the provider
    response = sign_in(client, provider, claimed)

    # then they are refused; the existing account is neither merged nor signed in
    assert response.status_code == 403
    assert_nothing_created(client, users_before)
    assert not FederatedIdentity.objects.exists()
    refusal("username_taken")


@pytest.mark.django_db
def test_a_deactivated_linked_account_is_refused(provider: OidcProviderServer) -> None:
    # given a linked account that a security admin deactivated
    user, _ = linked_person(provider, "nora")
    User.objects.filter(pk=user.pk).update(is_active=False)
    client = Client()

    # when its person signs in through the provider
    response = sign_in(client, provider, "nora")

    # then refused, nobody signed in
    assert response.status_code == 403
    assert signed_in_as(client) is None
    assert not UserSession.objects.exists()
    refusal("deactivated")


# --- links made and removed by security admins ----------------------------------------------


@pytest.mark.django_db
def test_a_security_admin_links_an_account_and_its_person_can_then_sign_in(
    provider: OidcProviderServer, admin_client: Client
) -> None:
    # given a local account with the same address as a person at the provider
    user = make_user(username="olga", email="olga@bank.example")
    make_totp_device(user)
    subject = provider.person("olga", email="olga@bank.example")
    assert sign_in(Client(), provider, "olga").status_code == 403  # refused until linked

    # when a security admin links it on the users page
    page = admin_client.get("/accounts/admin/users/")
    assert b"Sign-in through identity providers" in page.content
    response = admin_client.post(
        "/accounts/admin/identities/link/",
        {"username": "Olga", "provider": KEY, "subject": subject},
    )

    # then the link exists, audited, and the person signs in through the provider
    assert response.status_code == 302
    link = FederatedIdentity.objects.get(user=user)
    assert link.linked_via == "admin"
    assert events("account.identity.linked")[0].extra["via"] == "admin"
    client = Client()
    assert sign_in(client, provider, "olga")["Location"].startswith("/accounts/second-factor/")
    assert signed_in_as(client) == user.pk


@pytest.mark.django_db
def test_linking_is_for_security_admins_only_and_one_identity_is_one_account(
    provider: OidcProviderServer, security_admin: User
) -> None:
    # given two accounts and a person at the provider
    first, second = make_user(username="pia"), make_user(username="quin")
    subject = provider.person("pia")
    member = make_user(username="rudi")

    # when a member tries to link
    with pytest.raises(Refused):
        services.federated_identity_link(
            actor=member, user=first, provider_key=KEY, subject=subject
        )
    # then refused (permission), nothing linked
    assert not FederatedIdentity.objects.exists()

    # when the security admin links the identity to one account, then to another
    services.federated_identity_link(
        actor=security_admin, user=first, provider_key=KEY, subject=subject
    )
    with pytest.raises(Refused) as second_link:
        services.federated_identity_link(
            actor=security_admin, user=second, provider_key=KEY, subject=subject
        )

    # then the second is refused: an identity signs in to one account only
    assert second_link.value.reason == "already linked"
    assert list(FederatedIdentity.objects.values_list("user_id", flat=True)) == [first.pk]
    reasons = [e.extra["reason"] for e in events("account.admin.refused")]
    assert reasons == ["permission", "already linked"]
    # and a provider that is not configured is refused too
    with pytest.raises(Refused):
        services.federated_identity_link(
            actor=security_admin, user=second, provider_key="elsewhere", subject="x"
        )


@pytest.mark.django_db
def test_unlinking_ends_the_sessions_the_providers_mfa_verified(
    provider: OidcProviderServer, settings: Settings, security_admin: User
) -> None:
    # given a session verified by a trusted provider's multi-factor sign-in
    configure(settings, provider, trust_mfa=True)
    user, _ = linked_person(provider, "sara")
    provider.behave(claims={"amr": ["mfa"]})
    client = Client()
    assert sign_in(client, provider, "sara")["Location"] == "/rooms/"
    link = FederatedIdentity.objects.get(user=user)

    # when a security admin removes the link
    assert services.federated_identity_unlink(actor=security_admin, identity_id=link.pk)

    # then that session has ended, the link and its record are gone, and it is audited
    assert UserSession.objects.get(user=user).ended_at is not None
    assert not FederatedIdentity.objects.exists()
    assert not ProviderMfaDevice.objects.exists()
    (unlinked,) = events("account.identity.unlinked")
    assert unlinked.extra["sessions_ended"] == 1
    assert client.get("/rooms/")["Location"].startswith("/accounts/sign-in/")


@pytest.mark.django_db
def test_a_security_admin_cannot_link_their_own_account(
    provider: OidcProviderServer, security_admin: User
) -> None:
    # when a security admin links their own account to an identity
    with pytest.raises(Refused):
        services.federated_identity_link(
            actor=security_admin, user=security_admin, provider_key=KEY, subject="me"
        )

    # then refused (another admin must), nothing linked
    assert not FederatedIdentity.objects.exists()
    assert events("account.admin.refused")[0].extra["reason"] == "self"
