"""API tokens: shown once, stored hashed, scoped by method, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from accounts.credentials import sha256_hex
from accounts.models import ApiToken, User
from accounts.services import api_token_create, api_token_revoke
from tests.accounts.conftest import events
from tests.accounts.factories import make_user

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/accounts/tokens/"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_verified_user_creates_a_token_that_is_shown_once_and_stored_hashed(
    verified_client: Client, user: User
) -> None:
    response = verified_client.post(
        TOKENS, {"name": "ci", "scope": "read"}, content_type="application/json"
    )

    assert response.status_code == 201
    secret = response.json()["token"]
    token = ApiToken.objects.get()
    assert token.token_hash == sha256_hex(secret)
    assert secret not in token.token_hash
    assert secret.startswith(f"sct_{token.prefix}_")
    assert (token.expires_at - timezone.now()).days in {89, 90}
    listed = verified_client.get(TOKENS).json()["results"]
    assert "token" not in listed[0]
    assert listed[0]["prefix"] == token.prefix
    assert events("token.created")[0].extra["scope"] == "read"


def test_a_password_only_session_cannot_create_tokens(user: User) -> None:
    from tests.accounts.factories import sign_in_client

    client = Client()
    sign_in_client(client, user, verified=False)

    response = client.post(
        TOKENS, {"name": "ci", "scope": "admin"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert not ApiToken.objects.exists()
    assert not events("token.created")


def test_a_read_token_reads_but_cannot_write(user: User) -> None:
    _, secret = api_token_create(actor=user, name="reader", scope="read")
    client = Client()

    assert client.get("/api/schema/", headers=bearer(secret)).status_code == 200
    refused = client.post(
        TOKENS,
        {"name": "x", "scope": "read"},
        headers=bearer(secret),
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert ApiToken.objects.count() == 1
    assert len(events("token.created")) == 1


def test_token_management_needs_the_admin_scope_and_cannot_widen_it(user: User) -> None:
    _, write = api_token_create(actor=user, name="writer", scope="write")
    _, admin = api_token_create(actor=user, name="admin", scope="admin")
    client = Client()

    assert client.get(TOKENS, headers=bearer(write)).status_code == 403
    created = client.post(
        TOKENS,
        {"name": "child", "scope": "write"},
        headers=bearer(admin),
        content_type="application/json",
    )
    assert created.status_code == 201
    assert ApiToken.objects.get(name="child").user == user


def test_expired_revoked_unknown_and_malformed_tokens_get_one_answer_and_are_audited(
    user: User,
) -> None:
    expired_token, expired = api_token_create(actor=user, name="old", scope="read")
    ApiToken.objects.filter(pk=expired_token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked_token, revoked = api_token_create(actor=user, name="gone", scope="read")
    api_token_revoke(actor=user, token=revoked_token)
    client = Client()

    answers = [
        client.get(TOKENS, headers=bearer(t))
        for t in (expired, revoked, "sct_00000000_nope", "garbage", expired[:-2] + "xx")
    ]

    assert [a.status_code for a in answers] == [401] * 5
    assert {a["WWW-Authenticate"] for a in answers} == {'Bearer realm="api"'}
    assert {a.json()["detail"] for a in answers} == {"Invalid token."}
    reasons = [e.extra["reason"] for e in events("token.used.refused")]
    assert reasons == ["expired", "revoked", "unknown", "unknown", "unknown"]


def test_a_token_stops_working_when_its_user_is_deactivated(user: User) -> None:
    _, secret = api_token_create(actor=user, name="ci", scope="read")
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert Client().get(TOKENS, headers=bearer(secret)).status_code == 401
    assert events("token.used.refused")[0].extra["reason"] == "inactive_user"


def test_a_token_acts_as_its_user_and_sees_only_their_tokens(user: User) -> None:
    other = make_user()
    api_token_create(actor=other, name="theirs", scope="admin")
    _mine, secret = api_token_create(actor=user, name="mine", scope="admin")
    theirs = ApiToken.objects.get(name="theirs")
    client = Client()

    listed = client.get(TOKENS, headers=bearer(secret)).json()["results"]
    revoke_theirs = client.delete(f"{TOKENS}{theirs.pk}/", headers=bearer(secret))

    assert [t["name"] for t in listed] == ["mine"]
    assert revoke_theirs.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert not events("token.revoked")


def test_last_use_is_recorded_at_most_once_a_minute(user: User) -> None:
    token, secret = api_token_create(actor=user, name="ci", scope="read")
    client = Client()

    client.get(TOKENS, headers=bearer(secret))
    token.refresh_from_db()
    first = token.last_used_at
    client.get(TOKENS, headers=bearer(secret))
    token.refresh_from_db()

    assert first is not None
    assert token.last_used_at == first


def test_the_portal_creates_and_revokes_tokens(verified_client: Client) -> None:
    page = verified_client.post(
        "/accounts/tokens/", {"name": "report", "scope": "read", "days": 30}
    )
    assert page.status_code == 200
    assert page.context["secret"].startswith("sct_")
    token = ApiToken.objects.get()

    verified_client.post(f"/accounts/tokens/{token.pk}/revoke/")

    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_openapi_schema_documents_the_token_endpoints_and_scheme(
    verified_client: Client,
) -> None:
    schema = verified_client.get("/api/schema/", headers={"Accept": "application/json"})

    body = schema.content.decode()
    assert "/api/v1/accounts/tokens/" in body
    assert "apiToken" in body


def test_a_client_spraying_tokens_is_throttled_but_a_valid_token_from_it_still_works(
    user: User, settings: Settings
) -> None:
    settings.SAFECHAT_TOKEN_FAILURE_LIMIT = (3, 60)
    _, valid = api_token_create(actor=user, name="ci", scope="read")
    sprayer = Client(REMOTE_ADDR="203.0.113.7")

    answers = [sprayer.get(TOKENS, headers=bearer(f"sct_0000000{i}_guess")) for i in range(6)]
    valid_from_sprayer = sprayer.get("/api/schema/", headers=bearer(valid))
    valid_elsewhere = Client(REMOTE_ADDR="198.51.100.4").get("/api/schema/", headers=bearer(valid))

    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429, 429]
    assert int(answers[-1]["Retry-After"]) > 0
    assert valid_from_sprayer.status_code == 200  # one NAT address, many people
    assert valid_elsewhere.status_code == 200
    reasons = [e.extra["reason"] for e in events("token.used.refused")]
    assert reasons == ["unknown", "unknown", "unknown", "throttled"]


def _expiring(token: ApiToken, *, days: float) -> None:
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() + timedelta(days=days))


def test_a_token_with_one_day_left_cannot_mint_a_longer_lived_token(user: User) -> None:
    # given an admin token with one day left
    parent, secret = api_token_create(actor=user, name="old admin", scope="admin")
    _expiring(parent, days=1)

    # when it asks for a 366-day admin token
    answer = Client().post(
        TOKENS,
        {"name": "renewed", "scope": "admin", "days": 366},
        headers=bearer(secret),
        content_type="application/json",
    )

    # then it is refused, audited, and nothing is created
    assert answer.status_code == 403
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["old admin"]
    assert len(events("token.created")) == 1
    refused = events("token.create.refused")
    assert [e.extra["reason"] for e in refused] == ["lifetime"]
    assert refused[0].actor_id == user.pk
    assert refused[0].target_id == str(parent.pk)


def test_a_token_mints_a_token_that_ends_no_later_than_itself(user: User) -> None:
    parent, secret = api_token_create(actor=user, name="admin", scope="admin", days=30)

    answer = Client().post(
        TOKENS,
        {"name": "child", "scope": "read", "days": 29},
        headers=bearer(secret),
        content_type="application/json",
    )

    assert answer.status_code == 201
    child = ApiToken.objects.get(name="child")
    assert child.expires_at <= parent.expires_at
    assert not events("token.create.refused")


def test_a_token_without_days_gets_the_default_cut_to_its_own_life(user: User) -> None:
    parent, secret = api_token_create(actor=user, name="admin", scope="admin")
    _expiring(parent, days=10)
    parent.refresh_from_db()

    answer = Client().post(
        TOKENS, {"name": "child", "scope": "read"}, headers=bearer(secret),
        content_type="application/json",
    )  # fmt: skip

    assert answer.status_code == 201
    assert ApiToken.objects.get(name="child").expires_at == parent.expires_at
    assert not events("token.create.refused")


def test_a_token_never_mints_a_wider_scope(user: User) -> None:
    # given a write token (the service is the one check, whatever the edge)
    parent, _secret = api_token_create(actor=user, name="writer", scope="write")

    with pytest.raises(PermissionDenied):
        api_token_create(actor=user, name="wider", scope="admin", days=1, via_token=parent)

    assert ApiToken.objects.count() == 1
    assert [e.extra["reason"] for e in events("token.create.refused")] == ["scope"]


@pytest.mark.parametrize("edge", ["api", "portal", "service"])
def test_the_maximum_lifetime_applies_on_every_edge(
    edge: str, verified_client: Client, user: User, settings: Settings
) -> None:
    settings.SAFECHAT_TOKEN_MAX_DAYS = 30

    if edge == "api":
        status = verified_client.post(
            TOKENS, {"name": "long", "scope": "read", "days": 31},
            content_type="application/json",
        ).status_code  # fmt: skip
    elif edge == "portal":
        status = verified_client.post(
            "/accounts/tokens/", {"name": "long", "scope": "read", "days": 31}
        ).status_code
    else:
        with pytest.raises(ValidationError):
            api_token_create(actor=user, name="long", scope="read", days=31)
        status = 400

    assert status == 400
    assert not ApiToken.objects.exists()
    assert not events("token.created")


def test_the_default_lifetime_never_exceeds_the_maximum(user: User, settings: Settings) -> None:
    settings.SAFECHAT_TOKEN_MAX_DAYS = 7

    token, _ = api_token_create(actor=user, name="ci", scope="read")

    assert token.expires_at <= timezone.now() + timedelta(days=7)


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token sct_00000000_x", "Bearer\xe9t"],
)
def test_a_malformed_authorization_header_is_refused_and_audited(header: str) -> None:
    answer = Client().get(TOKENS, HTTP_AUTHORIZATION=header)

    assert answer.status_code == 401
    assert answer.json()["detail"] == "Invalid token."
    assert [e.extra["reason"] for e in events("token.used.refused")] == ["malformed"]


def test_malformed_authorization_headers_are_throttled_like_wrong_tokens(
    settings: Settings,
) -> None:
    settings.SAFECHAT_TOKEN_FAILURE_LIMIT = (3, 60)
    sprayer = Client(REMOTE_ADDR="203.0.113.9")

    answers = [sprayer.get(TOKENS, HTTP_AUTHORIZATION=f"Basic guess{i}") for i in range(5)]

    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    reasons = [e.extra["reason"] for e in events("token.used.refused")]
    assert reasons == ["malformed", "malformed", "malformed", "throttled"]


@pytest.mark.parametrize(
    ("granted", "needed", "method", "allowed"),
    [
        ("audit", "audit", "GET", True),
        ("audit", "audit", "POST", False),
        ("audit", "read", "GET", False),
        ("audit", "write", "POST", False),
        ("audit", "admin", "GET", False),
        ("admin", "audit", "GET", True),
        ("write", "audit", "GET", False),
        ("read", "audit", "GET", False),
        ("admin", "write", "POST", True),
        ("read", "write", "POST", False),
    ],
)
def test_the_audit_scope_stands_apart_from_the_ordered_ones(
    granted: str, needed: str, method: str, allowed: bool
) -> None:
    from accounts.scopes import scope_allows, scope_covers

    assert scope_allows(granted, needed, method) is allowed
    # minting: a child of scope ``needed`` under a parent of scope ``granted``
    if method == "GET":
        assert scope_covers(granted, needed) is allowed


def test_a_lowered_maximum_token_life_applies_to_tokens_already_issued(settings: Settings) -> None:
    # given a token minted for a year, 60 days ago
    alice = make_user()
    token, secret = api_token_create(actor=alice, name="ci", scope="read", days=365)
    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(days=60))

    # when the bank lowers the maximum life to 30 days
    settings.SAFECHAT_TOKEN_MAX_DAYS = 30
    answer = Client().get("/api/v1/rooms/", headers=bearer(secret))

    # then the token, older than the maximum, no longer works, and the refusal is on the record
    assert answer.status_code == 401
    (refused,) = events("token.used.refused")
    assert refused.extra["reason"] == "past_max_life"
    assert ApiToken.objects.get(pk=token.pk).last_used_at is None


@pytest.mark.parametrize(
    "name",
    ["\u202eevil", "ci\u2066", "\u200b", "ci\nprod", "ci\x1b[2J"],
    ids=["right-to-left-override", "isolate", "zero-width-space", "line-feed", "escape"],
)
def test_a_token_name_follows_the_rules_of_every_label(
    verified_client: Client, user: User, name: str
) -> None:
    # (a token's name is read in the token list and the audit log: shown reversed, blank
    # or on two lines, it could pass for another token's)
    response = verified_client.post(
        TOKENS, {"name": name, "scope": "read"}, content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["pointer"] == "#/name"
    assert error["code"] in {"bidi_control", "invisible", "control_character"}
    with pytest.raises(ValidationError):
        api_token_create(actor=user, name=name, scope="read")
    assert not ApiToken.objects.exists()
    assert not events("token.created")
