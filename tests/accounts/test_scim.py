"""SCIM 2.0 provisioning (RFC 7643/7644): create, read, list by userName, replace, patch,
deactivate through the one deactivation service; every refusal an RFC 7644 error,
nothing written, recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.models import ApiToken, ProvisionedAccount, User, UserSession
from accounts.realtime import CLOSE_SESSION_ENDED
from accounts.roles import Role
from accounts.scim import ERROR_SCHEMA, MEDIA_TYPE, PATCH_SCHEMA, USER_SCHEMA
from accounts.services import api_token_create, role_revoke
from audit.models import AuditEvent
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.accounts.test_sessions import closed_with, live_socket
from tests.rooms.concurrency import postgresql_only, run_together

USERS = "/scim/v2/Users"


def scim_token(owner: User) -> tuple[ApiToken, str]:
    return api_token_create(actor=owner, name="Bank IdP provisioning", scope="scim")


def provisioner() -> tuple[User, str]:
    admin = grant_role(make_user(username="provisioner"), Role.SECURITY_ADMIN)
    return admin, scim_token(admin)[1]


def call(method: str, path: str, secret: str | None, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    data = json.dumps(body) if body is not None and not isinstance(body, str) else body
    return getattr(Client(), method)(path, data=data, content_type=MEDIA_TYPE, headers=headers)


def new_user(**fields: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": "Alice.Smith",
        "externalId": "okta-00u1",
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"value": "Alice.Smith@bank.example", "type": "work", "primary": True}],
        "active": True,
        **fields,
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def assert_scim_error(response: Any, status: int, scim_type: str = "") -> None:
    assert response.status_code == status
    assert response["Content-Type"] == MEDIA_TYPE
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType", "") == scim_type
    assert "Traceback" not in json.dumps(body)


def people_count() -> int:
    return User.objects.count()


@pytest.mark.django_db
def test_the_provider_creates_an_account_in_precis_form_without_a_password() -> None:
    # given a security admin's SCIM token
    admin, secret = provisioner()

    # when the provider creates a user
    response = call("post", USERS, secret, new_user())

    # then it exists as SafeChat spells usernames, a member, with no usable password
    assert response.status_code == 201
    body = response.json()
    user = User.objects.get(pk=int(body["id"]))
    assert user.username == "alice.smith"
    assert body["userName"] == "alice.smith"
    assert body["externalId"] == "okta-00u1"
    assert body["active"] is True
    assert response["Location"].endswith(f"/scim/v2/Users/{user.pk}")
    assert response["Cache-Control"] == "no-store"
    assert user.email == "alice.smith@bank.example"
    assert (user.first_name, user.last_name) == ("Alice", "Smith")
    assert not user.has_usable_password()
    assert list(user.groups.values_list("name", flat=True)) == [Role.MEMBER.value]
    assert ProvisionedAccount.objects.get(user=user).external_id == "okta-00u1"
    created = events("account.created")[-1]
    assert created.extra == {"via": "scim", "role": "member"}
    assert created.actor_id == admin.pk
    assert created.channel == "scim"
    assert created.token_id is not None


@pytest.mark.django_db
def test_a_look_alike_of_a_taken_username_is_a_uniqueness_conflict_and_creates_nothing() -> None:
    _, secret = provisioner()
    make_user(username="alice")
    before = people_count()

    # when the provider creates the same name in capitals, and with a digit one for the l
    taken = call("post", USERS, secret, new_user(userName="ALICE", emails=[]))
    lookalike = call("post", USERS, secret, new_user(userName="a1ice", emails=[]))

    assert_scim_error(taken, 409, "uniqueness")
    assert_scim_error(lookalike, 409, "uniqueness")
    assert people_count() == before
    assert not ProvisionedAccount.objects.exists()
    refused = events("account.provisioning.refused")
    assert [e.extra["reason"] for e in refused] == ["uniqueness", "uniqueness"]


@pytest.mark.django_db
def test_a_username_mixing_scripts_is_an_invalid_value_and_creates_nothing() -> None:
    _, secret = provisioner()
    before = people_count()

    # when the provider creates "bob.smith" with a Cyrillic be (U+0431) for the b
    response = call("post", USERS, secret, new_user(userName="\u0431ob.smith", emails=[]))

    assert_scim_error(response, 400, "invalidValue")
    assert "mix letters of different scripts" in response.json()["detail"]
    assert people_count() == before


@pytest.mark.django_db
def test_a_username_with_a_direction_control_is_an_invalid_value() -> None:
    _, secret = provisioner()
    before = people_count()

    response = call("post", USERS, secret, new_user(userName="bob\u202eevil"))

    assert_scim_error(response, 400, "invalidValue")
    assert people_count() == before


@pytest.mark.django_db
def test_the_provider_finds_an_account_by_username_in_any_case() -> None:
    _, secret = provisioner()
    make_user(username="carol")
    make_user(username="dave")

    found = call("get", f'{USERS}?filter=userName eq "CAROL"', secret)
    missing = call("get", f'{USERS}?filter=userName eq "nobody"', secret)

    assert found.status_code == 200
    body = found.json()
    assert body["totalResults"] == 1
    assert [r["userName"] for r in body["Resources"]] == ["carol"]
    assert missing.json()["totalResults"] == 0
    assert missing.json()["Resources"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "expression",
    ['userName co "a"', 'emails eq "a@b"', 'userName eq "a" or userName eq "b"', "userName eq 1"],
)
def test_a_filter_other_than_username_eq_is_refused_as_invalid(expression: str) -> None:
    _, secret = provisioner()

    response = call("get", f"{USERS}?filter={expression}", secret)

    assert_scim_error(response, 400, "invalidFilter")
    assert events("account.provisioning.refused")[-1].extra["reason"] == "invalidFilter"


@pytest.mark.django_db
def test_an_unknown_or_system_id_is_not_found() -> None:
    _, secret = provisioner()

    assert_scim_error(call("get", f"{USERS}/999999", secret), 404)
    assert_scim_error(call("get", f"{USERS}/abc", secret), 404)
    assert_scim_error(call("patch", f"{USERS}/999999", secret, patch()), 404)


@pytest.mark.django_db
def test_deactivation_by_patch_ends_sessions_and_tokens_through_the_service() -> None:
    # given a person signed in with a token, and the provider's token
    admin, secret = provisioner()
    person = make_user(username="erin")
    sign_in_client(Client(), person, verified=True)
    person_token, _ = api_token_create(actor=person, name="ci", scope="read")

    # when the provider sets active to false, as Entra ID sends it
    response = call(
        "patch",
        f"{USERS}/{person.pk}",
        secret,
        patch({"op": "Replace", "path": "active", "value": "False"}),
    )

    # then the account is deactivated, every session ended and every token revoked
    assert response.status_code == 200
    assert response.json()["active"] is False
    person.refresh_from_db()
    assert not person.is_active
    assert not UserSession.objects.filter(user=person, ended_at__isnull=True).exists()
    person_token.refresh_from_db()
    assert person_token.revoked_at is not None
    deactivated = events("account.deactivated")[-1]
    assert deactivated.actor_id == admin.pk
    assert deactivated.extra["sessions_ended"] == 1
    assert deactivated.extra["tokens_revoked"] == 1
    assert deactivated.channel == "scim"


@pytest.mark.django_db
def test_reactivation_and_delete_go_through_the_services() -> None:
    _, secret = provisioner()
    person = make_user(username="frank")

    deleted = call("delete", f"{USERS}/{person.pk}", secret)
    person.refresh_from_db()
    assert deleted.status_code == 204
    assert not person.is_active  # never deleted: deactivated

    back = call(
        "patch", f"{USERS}/{person.pk}", secret, patch({"op": "replace", "value": {"active": True}})
    )
    person.refresh_from_db()
    assert back.status_code == 200
    assert person.is_active
    assert events("account.reactivated")


@pytest.mark.django_db
def test_replace_changes_names_and_email_and_records_the_fields_not_the_values() -> None:
    _, secret = provisioner()
    person = make_user(username="gina", first_name="Gina", email="gina@bank.example")

    response = call(
        "put",
        f"{USERS}/{person.pk}",
        secret,
        new_user(userName="GINA", name={"givenName": "Georgina"}, emails=[], externalId="x1"),
    )

    assert response.status_code == 200
    person.refresh_from_db()
    assert (person.first_name, person.email) == ("Georgina", "")
    updated = events("account.provisioning.updated")[-1]
    assert sorted(updated.extra["fields"]) == ["email", "external_id", "first_name"]
    assert "Georgina" not in json.dumps(updated.extra)


@pytest.mark.django_db
def test_a_username_change_is_refused_and_changes_nothing() -> None:
    _, secret = provisioner()
    person = make_user(username="hank", first_name="Hank")

    response = call(
        "patch",
        f"{USERS}/{person.pk}",
        secret,
        patch({"op": "replace", "path": "userName", "value": "henry"},
              {"op": "replace", "path": "name.givenName", "value": "Henry"}),
    )  # fmt: skip

    assert_scim_error(response, 400, "mutability")
    person.refresh_from_db()
    assert (person.username, person.first_name) == ("hank", "Hank")
    assert not events("account.provisioning.updated")


@pytest.mark.django_db
def test_a_malformed_body_or_patch_is_invalid_syntax_and_writes_nothing() -> None:
    _, secret = provisioner()
    person = make_user(username="ivy")
    before = people_count()

    not_json = call("post", USERS, secret, "{not json")
    no_schema = call("post", USERS, secret, {"userName": "jo"})
    bad_op = call("patch", f"{USERS}/{person.pk}", secret, patch({"op": "move", "path": "active"}))

    assert_scim_error(not_json, 400, "invalidSyntax")
    assert_scim_error(no_schema, 400, "invalidSyntax")
    assert_scim_error(bad_op, 400, "invalidSyntax")
    assert people_count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        '{"schemas": ["SCHEMA"], "userName": "jo\\ud800"}',
        '{"schemas": ["SCHEMA"], "userName": "jo", "name": {"givenName": "\\udc00"}}',
        '{"schemas": ["SCHEMA"], "userName": "jo", "\\ud83d": 1}',
    ],
    ids=["value", "nested", "member-name"],
)
def test_a_lone_surrogate_is_an_invalid_value_said_plainly_and_writes_nothing(body: str) -> None:
    _, secret = provisioner()
    before = people_count()

    # when a body's JSON escapes name a lone surrogate (not text: RFC 8259 8.2)
    response = call("post", USERS, secret, body.replace("SCHEMA", USER_SCHEMA))

    # then it is a 400 invalidValue naming where, in words (not a Python repr), recorded
    assert_scim_error(response, 400, "invalidValue")
    detail = response.json()["detail"]
    assert "surrogate" in detail
    assert "ErrorDetail" not in detail
    assert "{" not in detail
    assert people_count() == before
    assert events("account.provisioning.refused")[-1].extra["reason"] == "invalidValue"


@pytest.mark.django_db
def test_a_wrong_or_missing_token_is_401_audited_and_creates_nothing() -> None:
    _, secret = provisioner()
    before = people_count()

    wrong = call("post", USERS, secret[:-4] + "AAAA", new_user())
    missing = call("post", USERS, None, new_user())

    for response in (wrong, missing):
        assert_scim_error(response, 401)
        assert response["WWW-Authenticate"] == 'Bearer realm="scim"'
    assert people_count() == before
    assert [e.extra["reason"] for e in events("token.used.refused")] == ["unknown", "malformed"]


@pytest.mark.django_db
def test_a_token_of_another_scope_is_refused_even_admin() -> None:
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    _, secret = api_token_create(actor=admin, name="automation", scope="admin")
    before = people_count()

    response = call("post", USERS, secret, new_user())

    assert_scim_error(response, 403)
    assert people_count() == before
    assert events("account.provisioning.refused")[-1].extra["reason"] == "scope"


@pytest.mark.django_db
def test_a_scim_token_reaches_nothing_else() -> None:
    _, secret = provisioner()

    response = Client().get("/api/v1/accounts/me/", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 403


@pytest.mark.django_db
def test_only_a_security_admin_may_create_a_scim_token() -> None:
    member = make_user()

    with pytest.raises(PermissionDenied):
        scim_token(member)

    assert not ApiToken.objects.filter(user=member).exists()
    assert events("token.create.refused")[-1].extra["reason"] == "permission"


@pytest.mark.django_db
def test_a_token_whose_owner_lost_the_role_provisions_nothing() -> None:
    owner, secret = provisioner()
    other = grant_role(make_user(), Role.SECURITY_ADMIN)
    role_revoke(actor=other, user=owner, role=Role.SECURITY_ADMIN)
    before = people_count()

    response = call("post", USERS, secret, new_user())

    assert_scim_error(response, 403)
    assert people_count() == before
    assert events("account.provisioning.refused")[-1].extra["reason"] == "permission"


@pytest.mark.django_db
def test_the_token_owner_cannot_deactivate_themselves_by_scim() -> None:
    owner, secret = provisioner()
    grant_role(make_user(), Role.SECURITY_ADMIN)

    response = call(
        "patch",
        f"{USERS}/{owner.pk}",
        secret,
        patch({"op": "replace", "path": "active", "value": False}),
    )

    assert_scim_error(response, 409)
    owner.refresh_from_db()
    assert owner.is_active
    assert not events("account.deactivated")


@pytest.mark.django_db
def test_service_provider_config_says_what_is_supported() -> None:
    _, secret = provisioner()

    body = call("get", "/scim/v2/ServiceProviderConfig", secret).json()

    assert body["patch"]["supported"] is True
    assert body["bulk"]["supported"] is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_scim_deactivation_closes_the_persons_live_socket() -> None:
    # given a person with a live socket, and the provider's token
    person = await database_sync_to_async(make_user)(username="kim")
    _, secret = await database_sync_to_async(provisioner)()
    socket, _ = await live_socket(person)

    # when the provider deactivates them
    response = await database_sync_to_async(call)(
        "patch", f"{USERS}/{person.pk}", secret,
        patch({"op": "replace", "path": "active", "value": False}),
    )  # fmt: skip

    # then the socket closes at once
    assert response.status_code == 200
    assert await closed_with(socket) == CLOSE_SESSION_ENDED
    assert (
        await database_sync_to_async(
            AuditEvent.objects.filter(action="account.deactivated").count
        )()
        == 1
    )


@pytest.mark.django_db
def test_a_verified_session_without_a_token_provisions_nothing(verified_client: Client) -> None:
    before = people_count()

    response = verified_client.post(USERS, json.dumps(new_user()), content_type=MEDIA_TYPE)

    assert_scim_error(response, 401)
    assert people_count() == before
    assert events("token.used.refused")[-1].extra["reason"] == "malformed"


@pytest.mark.django_db
def test_a_user_created_inactive_is_deactivated_through_the_service() -> None:
    _, secret = provisioner()

    response = call("post", USERS, secret, new_user(active=False))

    assert response.status_code == 201
    assert response.json()["active"] is False
    assert not User.objects.get(username="alice.smith").is_active
    assert events("account.deactivated")


@pytest.mark.django_db
def test_the_portal_offers_the_scim_scope_to_security_admins_only(
    verified_client: Client, admin_client: Client
) -> None:
    # given a member and a security admin on the tokens page
    offered_member = b'value="scim"' in verified_client.get("/accounts/tokens/").content
    offered_admin = b'value="scim"' in admin_client.get("/accounts/tokens/").content

    # when each asks for a SCIM token
    refused = verified_client.post(
        "/accounts/tokens/", {"name": "idp", "scope": "scim", "days": 30}
    )
    created = admin_client.post("/accounts/tokens/", {"name": "idp", "scope": "scim", "days": 30})

    # then only the admin is offered one and gets one
    assert (offered_member, offered_admin) == (False, True)
    assert refused.status_code == 400
    assert created.status_code == 200
    assert list(ApiToken.objects.filter(scope="scim").values_list("user__username", flat=True)) == [
        "secadmin"
    ]


@postgresql_only("two creations of one username race only where rows lock one by one")
@pytest.mark.django_db(transaction=True)
def test_two_creations_of_one_username_at_the_same_instant_make_one_account() -> None:
    # given the provider's token
    _, secret = provisioner()

    # when it creates the same person twice at the same instant (a retry racing the first)
    outcomes = run_together(
        lambda: call("post", USERS, secret, new_user(emails=[])),
        lambda: call("post", USERS, secret, new_user(userName="ALICE.SMITH", emails=[])),
    )

    # then one account exists; the other request is a uniqueness conflict, on record
    assert [o.error for o in outcomes] == [None, None]
    assert sorted(o.value.status_code for o in outcomes) == [201, 409]
    assert User.objects.filter(username="alice.smith").count() == 1
    assert ProvisionedAccount.objects.count() == 1
    assert [e.extra["reason"] for e in events("account.provisioning.refused")] == ["uniqueness"]


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["another security admin", "the token's owner", "break-glass"])
def test_a_provider_cannot_change_the_email_a_password_reset_goes_to_of_a_guarded_account(
    whose: str, settings: Any
) -> None:
    # given an account whose e-mail would hand over one factor of an administrator
    owner, secret = provisioner()
    settings.SAFECHAT_BREAK_GLASS_USERNAMES = ["emergency"]
    if whose == "another security admin":
        person = grant_role(
            make_user(username="dana", email="dana@bank.example"), Role.SECURITY_ADMIN
        )
    elif whose == "the token's owner":
        person = owner
    else:
        person = make_user(username="emergency", email="emergency@bank.example")
    before = User.objects.get(pk=person.pk).email
    updated = len(events("account.provisioning.updated"))

    # when the provider points it at another address
    response = call(
        "patch",
        f"{USERS}/{person.pk}",
        secret,
        patch({"op": "replace", "path": "emails", "value": [{"value": "evil@attacker.example"}]}),
    )

    # then it is refused and recorded, and the e-mail and the audit of updates are unchanged
    # (one's own account is a conflict with the state of things, as deactivating it is)
    assert_scim_error(response, 409 if whose == "the token's owner" else 403)
    assert User.objects.get(pk=person.pk).email == before
    assert len(events("account.provisioning.updated")) == updated
    refused = events("account.provisioning.refused")[-1]
    reason = {"another security admin": "security admin", "the token's owner": "self"}
    assert refused.extra["reason"] == reason.get(whose, "break-glass")


@pytest.mark.django_db
def test_a_provider_still_changes_an_ordinary_persons_email() -> None:
    _, secret = provisioner()
    person = make_user(username="ivan", email="ivan@bank.example")

    response = call(
        "patch",
        f"{USERS}/{person.pk}",
        secret,
        patch({"op": "replace", "path": "emails", "value": [{"value": "ivan.n@bank.example"}]}),
    )

    assert response.status_code == 200
    assert User.objects.get(pk=person.pk).email == "ivan.n@bank.example"


@pytest.mark.django_db
def test_a_patch_that_changes_nothing_writes_nothing() -> None:
    # given a local account SCIM never wrote to
    _, secret = provisioner()
    person = make_user(username="jane", first_name="Jane")
    updated = len(events("account.provisioning.updated"))

    # when the provider sends its current name again
    response = call(
        "patch",
        f"{USERS}/{person.pk}",
        secret,
        patch({"op": "replace", "path": "name.givenName", "value": "Jane"}),
    )

    # then it is answered, and nothing is written or recorded: not even a provisioning mark
    assert response.status_code == 200
    assert not ProvisionedAccount.objects.filter(user=person).exists()
    assert len(events("account.provisioning.updated")) == updated
