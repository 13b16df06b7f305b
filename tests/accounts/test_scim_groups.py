"""SCIM 2.0 Groups (RFC 7643 4.2, RFC 7644): create, list by displayName or externalId,
read, replace, patch in the shapes Entra ID and Okta send, delete; a group's membership
applies the sign-in's mapping (role_map, barrier_group_map of
SAFECHAT_SCIM_GROUPS_PROVIDER) under its rules; every refusal an RFC 7644 error, nothing
written, recorded."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from pytest_django import Settings

from accounts.models import ScimGroup, User
from accounts.roles import Role
from accounts.scim import GROUP_SCHEMA
from accounts.services import api_token_create
from accounts.sso import OidcProvider, SsoConfigurationError, scim_groups_provider_parse
from audit.models import AuditEvent
from rooms.services import barrier_create
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role, make_user
from tests.accounts.test_scim import assert_scim_error, call, patch, provisioner
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

GROUPS = "/scim/v2/Groups"
ROLE_MAP = (("chat-room-admins", "room_admin"), ("0f6e-secadmins", "security_admin"))
GROUP_MAP = (("research-division", "Research"), ("5b1c-sales-oid", "Sales"))
PROVIDER = OidcProvider(
    key="corp",
    name="Bank sign-in",
    issuer="https://login.bank.example",
    client_id="safechat",
    role_map=ROLE_MAP,
    barrier_group_map=GROUP_MAP,
)


@pytest.fixture(autouse=True)
def mapped(settings: Settings) -> None:
    settings.SAFECHAT_OIDC_PROVIDERS = (PROVIDER,)
    settings.SAFECHAT_SCIM_GROUPS_PROVIDER = "corp"
    Group.objects.get_or_create(name="Research")
    Group.objects.get_or_create(name="Sales")


def held(user: User) -> set[str]:
    return set(Group.objects.filter(user__pk=user.pk).values_list("name", flat=True))


def new_group(display_name: str, *members: User, **fields: Any) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "displayName": display_name,
        "members": [{"value": str(m.pk), "display": m.username} for m in members],
        **fields,
    }


def create(secret: str, display_name: str, *members: User, **fields: Any) -> ScimGroup:
    response = call("post", GROUPS, secret, new_group(display_name, *members, **fields))
    assert response.status_code == 201, response.content
    return ScimGroup.objects.get(pk=int(response.json()["id"]))


def members_of(group: ScimGroup) -> set[int]:
    return set(group.members.values_list("pk", flat=True))


def applied() -> list[AuditEvent]:
    return events("account.idp_access.applied")


def written_nothing(groups_before: int, audit_before: int) -> None:
    assert ScimGroup.objects.count() == groups_before
    assert not AuditEvent.objects.filter(
        action__in=[
            "account.provisioning.group_created",
            "account.provisioning.group_updated",
            "account.provisioning.group_deleted",
            "account.idp_access.applied",
        ]
    ).exists()
    assert AuditEvent.objects.count() == audit_before + 1  # the refusal alone


# --- create, read, list ------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_mapped_group_stores_it_and_grants_its_members_the_role() -> None:
    # given a security admin's SCIM token and a person
    admin, secret = provisioner()
    alice = make_user(username="alice")

    # when the provider creates "chat-room-admins" with her as a member
    response = call("post", GROUPS, secret, new_group("chat-room-admins", alice, externalId="e1"))

    # then the group is kept as sent, and she is a room admin, audited as SCIM's doing
    assert response.status_code == 201
    body = response.json()
    group = ScimGroup.objects.get(pk=int(body["id"]))
    assert (group.display_name, group.external_id) == ("chat-room-admins", "e1")
    assert members_of(group) == {alice.pk}
    assert body["schemas"] == [GROUP_SCHEMA]
    assert body["members"] == [
        {
            "value": str(alice.pk),
            "display": "alice",
            "$ref": f"http://testserver/scim/v2/Users/{alice.pk}",
            "type": "User",
        }
    ]
    assert body["meta"]["resourceType"] == "Group"
    assert response["Location"].endswith(f"/scim/v2/Groups/{group.pk}")
    assert Role.ROOM_ADMIN.value in held(alice)
    created = events("account.provisioning.group_created")[-1]
    assert created.actor_id == admin.pk
    assert created.channel == "scim"
    assert created.extra["members_added"] == [alice.pk]
    change = applied()[-1]
    assert change.actor_id == admin.pk
    assert change.target_id == str(alice.pk)
    assert change.extra["via"] == "scim"
    assert change.extra["scim_group"] == group.pk
    assert change.extra["roles_granted"] == ["room_admin"]


@pytest.mark.django_db
def test_a_group_is_read_by_id_and_listed_by_display_name_external_id_and_page() -> None:
    # given three groups
    _, secret = provisioner()
    alice = make_user(username="alice")
    first = create(secret, "chat-room-admins", alice, externalId="oid-1")
    create(secret, "research-division", externalId="oid-2")
    create(secret, "unmapped")

    # when the provider reads one and lists them as Entra ID and Okta do
    one = call("get", f"{GROUPS}/{first.pk}", secret).json()
    by_name = call("get", f'{GROUPS}?filter=displayName eq "chat-room-admins"', secret).json()
    by_external = call(
        "get", f'{GROUPS}?filter=externalId eq "oid-2"&excludedAttributes=members', secret
    ).json()
    page = call("get", f"{GROUPS}?startIndex=2&count=1", secret).json()

    # then each answer is the RFC 7644 ListResponse it asked for
    assert one["displayName"] == "chat-room-admins"
    assert [m["value"] for m in one["members"]] == [str(alice.pk)]
    assert [g["id"] for g in by_name["Resources"]] == [str(first.pk)]
    assert by_name["totalResults"] == 1
    assert [g["displayName"] for g in by_external["Resources"]] == ["research-division"]
    assert "members" not in by_external["Resources"][0]
    assert page["totalResults"] == 3
    assert page["startIndex"] == 2
    assert [g["displayName"] for g in page["Resources"]] == ["research-division"]


@pytest.mark.django_db
def test_a_filter_matching_nothing_is_an_empty_list_not_an_error() -> None:
    _, secret = provisioner()

    response = call("get", f'{GROUPS}?filter=displayName eq "nobody"', secret)

    assert response.status_code == 200
    assert response.json()["totalResults"] == 0
    assert response.json()["Resources"] == []


# --- replace (PUT) -----------------------------------------------------------------------


@pytest.mark.django_db
def test_put_replaces_the_members_so_the_one_left_out_loses_the_role_and_the_new_one_gets_it() -> (
    None
):
    # given a mapped group with Alice
    _, secret = provisioner()
    alice, bob = make_user(username="alice"), make_user(username="bob")
    group = create(secret, "chat-room-admins", alice)

    # when the provider puts it back with Bob alone
    response = call("put", f"{GROUPS}/{group.pk}", secret, new_group("chat-room-admins", bob))

    # then Bob holds the role and Alice no more
    assert response.status_code == 200
    assert members_of(group) == {bob.pk}
    assert Role.ROOM_ADMIN.value in held(bob)
    assert Role.ROOM_ADMIN.value not in held(alice)
    updated = events("account.provisioning.group_updated")[-1]
    assert updated.extra["members_added"] == [bob.pk]
    assert updated.extra["members_removed"] == [alice.pk]
    assert applied()[-2].extra["roles_revoked"] == ["room_admin"]  # Alice, lower id first
    assert applied()[-1].extra["roles_granted"] == ["room_admin"]


# --- PATCH as Entra ID sends it ---------------------------------------------------------


@pytest.mark.django_db
def test_entra_adds_and_removes_members_with_value_lists_and_capitalised_ops() -> None:
    # given an empty mapped barrier group
    _, secret = provisioner()
    alice, bob = make_user(username="alice"), make_user(username="bob")
    group = create(secret, "research-division")

    # when Entra ID adds both, then removes Alice, as its provisioning service does
    added = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch(
            {
                "op": "Add",
                "path": "members",
                "value": [{"value": str(alice.pk)}, {"value": str(bob.pk)}],
            }
        ),
    )
    removed = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch({"op": "Remove", "path": "members", "value": [{"value": str(alice.pk)}]}),
    )

    # then Bob is in Research, Alice was and is no more
    assert added.status_code == 200
    assert removed.status_code == 200
    assert members_of(group) == {bob.pk}
    assert "Research" in held(bob)
    assert "Research" not in held(alice)
    assert [e.extra["groups_added"] for e in applied()] == [["Research"], ["Research"], []]
    assert applied()[-1].extra["groups_removed"] == ["Research"]


@pytest.mark.django_db
def test_entra_maps_by_external_id_its_group_object_id() -> None:
    # given the mapping names Entra ID's object id of Sales, which its groups claim sends
    _, secret = provisioner()
    alice = make_user(username="alice")

    # when Entra ID creates the group with that object id as externalId
    create(secret, "Sales EMEA", alice, externalId="5b1c-sales-oid")

    # then the mapping applies, as at a sign-in whose claim carries the object id
    assert "Sales" in held(alice)


@pytest.mark.django_db
def test_entra_renames_a_group_and_the_mapping_follows_the_new_name() -> None:
    # given an unmapped group with Alice
    _, secret = provisioner()
    alice = make_user(username="alice")
    group = create(secret, "staging-name", alice)
    assert Role.ROOM_ADMIN.value not in held(alice)

    # when Entra ID replaces its displayName with a mapped one
    response = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch({"op": "Replace", "path": "displayName", "value": "chat-room-admins"}),
    )

    # then every member gets what the new name maps to
    assert response.status_code == 200
    assert response.json()["displayName"] == "chat-room-admins"
    assert Role.ROOM_ADMIN.value in held(alice)
    assert events("account.provisioning.group_updated")[-1].extra["fields"] == ["display_name"]


# --- PATCH as Okta sends it -------------------------------------------------------------


@pytest.mark.django_db
def test_okta_removes_a_member_by_a_value_filter_path() -> None:
    _, secret = provisioner()
    alice, bob = make_user(username="alice"), make_user(username="bob")
    group = create(secret, "chat-room-admins", alice, bob)

    # when Okta removes Alice by members[value eq "<id>"]
    response = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch({"op": "remove", "path": f'members[value eq "{alice.pk}"]'}),
    )

    assert response.status_code == 200
    assert members_of(group) == {bob.pk}
    assert Role.ROOM_ADMIN.value not in held(alice)
    assert Role.ROOM_ADMIN.value in held(bob)


@pytest.mark.django_db
def test_okta_replaces_the_name_without_a_path_and_adds_members() -> None:
    _, secret = provisioner()
    alice = make_user(username="alice")
    group = create(secret, "Okta Research")

    # when Okta sends its two operations: the group object, then the members to add
    response = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch(
            {
                "op": "replace",
                "value": {"id": str(group.pk), "displayName": "research-division"},
            },
            {
                "op": "add",
                "path": "members",
                "value": [{"value": str(alice.pk), "display": "alice"}],
            },
        ),
    )

    assert response.status_code == 200
    group.refresh_from_db()
    assert group.display_name == "research-division"
    assert members_of(group) == {alice.pk}
    assert "Research" in held(alice)


@pytest.mark.django_db
def test_replace_of_members_sets_the_whole_list() -> None:
    _, secret = provisioner()
    alice, bob = make_user(username="alice"), make_user(username="bob")
    group = create(secret, "chat-room-admins", alice)

    response = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch({"op": "replace", "path": "members", "value": [{"value": str(bob.pk)}]}),
    )

    assert response.status_code == 200
    assert members_of(group) == {bob.pk}
    assert held(alice) & {Role.ROOM_ADMIN.value} == set()


# --- the mapping's rules -----------------------------------------------------------------


@pytest.mark.django_db
def test_roles_and_groups_the_mapping_does_not_name_are_never_touched() -> None:
    # given a compliance officer in an unmapped barrier group, in a mapped SCIM group
    _, secret = provisioner()
    carol = grant_role(make_user(username="carol"), Role.COMPLIANCE_OFFICER)
    trading, _ = Group.objects.get_or_create(name="Trading")
    carol.groups.add(trading)
    group = create(secret, "chat-room-admins", carol)

    # when she leaves the SCIM group
    call("patch", f"{GROUPS}/{group.pk}", secret, patch({"op": "remove", "path": "members"}))

    # then only the mapped role went; her other role and group stayed
    assert Role.COMPLIANCE_OFFICER.value in held(carol)
    assert "Trading" in held(carol)
    assert Role.ROOM_ADMIN.value not in held(carol)


@pytest.mark.django_db
def test_a_role_another_of_the_persons_scim_groups_maps_to_stays() -> None:
    # given Alice in two SCIM groups, one by name and one by externalId, both room admins
    _, secret = provisioner()
    alice = make_user(username="alice")
    first = create(secret, "chat-room-admins", alice)
    create(secret, "other-name", alice, externalId="chat-room-admins")

    # when the first is deleted
    response = call("delete", f"{GROUPS}/{first.pk}", secret)

    # then the second still maps her to the role
    assert response.status_code == 204
    assert not ScimGroup.objects.filter(pk=first.pk).exists()
    assert Role.ROOM_ADMIN.value in held(alice)


@pytest.mark.django_db
def test_deleting_a_group_takes_away_what_it_mapped_to() -> None:
    admin, secret = provisioner()
    alice = make_user(username="alice")
    group = create(secret, "research-division", alice)

    response = call("delete", f"{GROUPS}/{group.pk}", secret)

    assert response.status_code == 204
    assert "Research" not in held(alice)
    deleted = events("account.provisioning.group_deleted")[-1]
    assert deleted.actor_id == admin.pk
    assert deleted.extra["members_removed"] == [alice.pk]
    assert applied()[-1].extra["groups_removed"] == ["Research"]
    assert call("get", f"{GROUPS}/{group.pk}", secret).status_code == 404


@pytest.mark.django_db
def test_a_security_admins_roles_are_never_changed_by_provisioning() -> None:
    # given another security admin, and the mapped security admins' group without them
    _, secret = provisioner()
    dana = grant_role(make_user(username="dana"), Role.SECURITY_ADMIN)
    group = create(secret, "0f6e-secadmins", dana)
    assert Role.SECURITY_ADMIN.value in held(dana)

    # when the provider puts her into the room admins' group and out of the other
    call("put", f"{GROUPS}/{group.pk}", secret, new_group("0f6e-secadmins"))
    create(secret, "chat-room-admins", dana)

    # then her roles are as they were, each change held back and recorded
    assert Role.SECURITY_ADMIN.value in held(dana)
    assert Role.ROOM_ADMIN.value not in held(dana)
    reasons = [h for e in applied() for h in e.extra["held_back"]]
    assert {"role": "security_admin", "reason": "security admin"} in reasons
    assert {"role": "room_admin", "reason": "security admin"} in reasons


@pytest.mark.django_db
def test_the_tokens_owner_keeps_their_own_barrier_groups() -> None:
    admin, secret = provisioner()

    create(secret, "research-division", admin)

    assert "Research" not in held(admin)
    assert {"group": "Research", "reason": "self"} in applied()[-1].extra["held_back"]


@pytest.mark.django_db
def test_a_barrier_group_across_a_wall_from_a_room_mate_is_added_and_the_room_reported() -> None:
    # given Research walled off from Sales, and an analyst sharing a room with a trader
    admin = grant_role(make_user(username="wallkeeper"), Role.SECURITY_ADMIN)
    research, sales = Group.objects.get(name="Research"), Group.objects.get(name="Sales")
    barrier_create(actor=admin, group_a=research, group_b=sales, reason="MAR")
    analyst, trader = make_user(username="analyst"), make_user(username="trader")
    trader.groups.add(sales)
    make_room(members=(analyst, trader))
    _, secret = provisioner()

    # when the provider puts the analyst into the mapped research group
    create(secret, "research-division", analyst)

    # then, as at a sign-in, the group is added and the room in violation is counted
    assert "Research" in held(analyst)
    assert applied()[-1].extra["rooms_in_violation"] == 1


@pytest.mark.django_db
def test_without_a_scim_groups_provider_groups_are_kept_and_map_nothing(
    settings: Settings,
) -> None:
    settings.SAFECHAT_SCIM_GROUPS_PROVIDER = ""
    _, secret = provisioner()
    alice = make_user(username="alice")

    group = create(secret, "chat-room-admins", alice)

    assert members_of(group) == {alice.pk}
    assert Role.ROOM_ADMIN.value not in held(alice)
    assert applied() == []
    assert len(events("account.provisioning.group_created")) == 1


@pytest.mark.django_db
def test_a_scim_groups_provider_that_is_not_configured_refuses_to_start() -> None:
    with pytest.raises(SsoConfigurationError, match="no configured provider"):
        scim_groups_provider_parse("elsewhere", [PROVIDER], [])
    assert scim_groups_provider_parse(" corp ", [PROVIDER], []) == "corp"
    assert scim_groups_provider_parse("", [], []) == ""


# --- refusals: RFC 7644 errors, nothing written, recorded ------------------------------


@pytest.mark.django_db
def test_a_taken_display_name_is_a_uniqueness_conflict_and_writes_nothing() -> None:
    _, secret = provisioner()
    alice = make_user(username="alice")
    ScimGroup.objects.create(display_name="chat-room-admins")
    groups, audit = ScimGroup.objects.count(), AuditEvent.objects.count()

    response = call("post", GROUPS, secret, new_group("chat-room-admins", alice))

    assert_scim_error(response, 409, "uniqueness")
    written_nothing(groups, audit)
    assert Role.ROOM_ADMIN.value not in held(alice)
    assert events("account.provisioning.refused")[-1].extra["reason"] == "uniqueness"


@pytest.mark.django_db
def test_a_member_that_names_no_account_refuses_the_whole_request() -> None:
    _, secret = provisioner()
    alice = make_user(username="alice")
    groups, audit = ScimGroup.objects.count(), AuditEvent.objects.count()
    body = new_group("chat-room-admins", alice)
    body["members"].append({"value": "999999"})

    response = call("post", GROUPS, secret, body)

    assert_scim_error(response, 400, "invalidValue")
    written_nothing(groups, audit)
    assert Role.ROOM_ADMIN.value not in held(alice)


@pytest.mark.django_db
def test_a_patch_adding_an_unknown_member_changes_nothing_of_the_group() -> None:
    _, secret = provisioner()
    alice, bob = make_user(username="alice"), make_user(username="bob")
    group = create(secret, "chat-room-admins", alice)
    before = AuditEvent.objects.count()

    response = call(
        "patch",
        f"{GROUPS}/{group.pk}",
        secret,
        patch(
            {"op": "remove", "path": "members", "value": [{"value": str(alice.pk)}]},
            {"op": "add", "path": "members", "value": [{"value": str(bob.pk)}, {"value": "x"}]},
        ),
    )

    assert_scim_error(response, 400, "invalidValue")
    assert members_of(group) == {alice.pk}
    assert Role.ROOM_ADMIN.value in held(alice)
    assert AuditEvent.objects.count() == before + 1
    assert events("account.provisioning.refused")[-1].extra["reason"] == "invalidValue"


@pytest.mark.parametrize(
    ("operations", "scim_type"),
    [
        ([{"op": "remove", "path": "displayName"}], "mutability"),
        ([{"op": "remove"}], "noTarget"),
        ([{"op": "remove", "path": 'members[display eq "alice"]'}], "invalidPath"),
        ([{"op": "move", "path": "members", "value": []}], "invalidSyntax"),
        ([{"op": "add", "path": "members", "value": "alice"}], "invalidValue"),
        (
            [{"op": "add", "path": "members", "value": [{"value": "1", "type": "Group"}]}],
            "invalidValue",
        ),
        ([{"op": "replace", "path": "displayName", "value": ""}], "invalidValue"),
        ([], "invalidSyntax"),
    ],
)
@pytest.mark.django_db
def test_a_malformed_patch_is_refused_as_rfc_7644_says_and_changes_nothing(
    operations: list[dict[str, Any]], scim_type: str
) -> None:
    _, secret = provisioner()
    alice = make_user(username="alice")
    group = create(secret, "chat-room-admins", alice)
    before = AuditEvent.objects.count()

    response = call("patch", f"{GROUPS}/{group.pk}", secret, patch(*operations))

    assert_scim_error(response, 400, scim_type)
    group.refresh_from_db()
    assert group.display_name == "chat-room-admins"
    assert members_of(group) == {alice.pk}
    assert AuditEvent.objects.count() == before + 1
    assert events("account.provisioning.refused")[-1].extra["reason"] == scim_type


@pytest.mark.parametrize(
    "query",
    [
        'displayName co "admins"',
        'userName eq "alice"',
        'displayName eq "a" and externalId eq "b"',
        "displayName eq 1",
    ],
)
@pytest.mark.django_db
def test_any_other_filter_is_an_invalid_filter(query: str) -> None:
    _, secret = provisioner()

    response = call("get", f"{GROUPS}?filter={query}", secret)

    assert_scim_error(response, 400, "invalidFilter")
    assert events("account.provisioning.refused")[-1].extra["reason"] == "invalidFilter"


@pytest.mark.django_db
def test_a_body_that_is_not_a_group_is_invalid_syntax_and_creates_nothing() -> None:
    _, secret = provisioner()
    groups, audit = ScimGroup.objects.count(), AuditEvent.objects.count()

    response = call("post", GROUPS, secret, {"displayName": "no schemas"})

    assert_scim_error(response, 400, "invalidSyntax")
    written_nothing(groups, audit)


@pytest.mark.django_db
def test_an_unknown_group_is_a_404_recorded() -> None:
    _, secret = provisioner()
    before = AuditEvent.objects.count()

    for method in ("get", "delete"):
        assert_scim_error(call(method, f"{GROUPS}/424242", secret), 404)
    assert_scim_error(call("put", f"{GROUPS}/abc", secret, new_group("x")), 404)

    assert AuditEvent.objects.count() == before + 3
    assert {e.extra["reason"] for e in events("account.provisioning.refused")} == {"not_found"}


@pytest.mark.django_db
def test_a_token_of_another_scope_or_none_reaches_no_group() -> None:
    # given an admin token of the same security admin
    admin, _ = provisioner()
    _, other = api_token_create(actor=admin, name="automation", scope="admin")
    groups = ScimGroup.objects.count()

    wrong_scope = call("post", GROUPS, other, new_group("chat-room-admins"))
    no_token = call("get", GROUPS, None)

    assert_scim_error(wrong_scope, 403)
    assert no_token.status_code == 401
    assert no_token["WWW-Authenticate"] == 'Bearer realm="scim"'
    assert ScimGroup.objects.count() == groups
    assert events("account.provisioning.refused")[-1].extra["reason"] == "scope"
    assert not events("account.provisioning.group_created")


@pytest.mark.django_db
def test_a_token_whose_owner_lost_the_role_changes_no_group() -> None:
    # given a group, and its token's owner no longer a security admin
    admin, secret = provisioner()
    alice = make_user(username="alice")
    group = create(secret, "chat-room-admins", alice)
    grant_role(make_user(username="other-admin"), Role.SECURITY_ADMIN)
    admin.groups.remove(Group.objects.get(name=Role.SECURITY_ADMIN.value))

    response = call("delete", f"{GROUPS}/{group.pk}", secret)

    assert_scim_error(response, 403)
    assert ScimGroup.objects.filter(pk=group.pk).exists()
    assert Role.ROOM_ADMIN.value in held(alice)
    assert events("account.provisioning.refused")[-1].extra["reason"] == "permission"


# --- discovery --------------------------------------------------------------------------


@pytest.mark.django_db
def test_resource_types_and_schemas_advertise_groups() -> None:
    _, secret = provisioner()

    types = call("get", "/scim/v2/ResourceTypes", secret).json()
    schemas = call("get", "/scim/v2/Schemas", secret).json()
    config = call("get", "/scim/v2/ServiceProviderConfig", secret)

    assert {(t["name"], t["endpoint"]) for t in types["Resources"]} == {
        ("User", "/Users"),
        ("Group", "/Groups"),
    }
    group = next(s for s in schemas["Resources"] if s["id"] == GROUP_SCHEMA)
    assert {a["name"] for a in group["attributes"]} == {"displayName", "members"}
    assert config.status_code == 200
    assert config.json()["patch"] == {"supported": True}


# --- concurrency: a person's mapped roles come from all their SCIM groups ---------------


@postgresql_only("two changes of different SCIM groups meet on their member's row")
@pytest.mark.django_db(transaction=True)
def test_leaving_one_mapped_group_while_joining_another_keeps_the_role() -> None:
    # given two SCIM groups mapped to room admin (by displayName, by externalId), Alice in
    # the first
    _, secret = provisioner()
    alice = make_user(username="alice")
    first = create(secret, "chat-room-admins", alice)
    second = create(secret, "Room admins (Entra)", externalId="chat-room-admins")

    for _ in range(3):
        # when, at the same instant, the provider takes her out of the one she is in and
        # puts her into the other
        was, will = (first, second) if alice.pk in members_of(first) else (second, first)
        leave = patch({"op": "remove", "path": f'members[value eq "{alice.pk}"]'})
        join = patch({"op": "add", "path": "members", "value": [{"value": str(alice.pk)}]})
        outcomes = run_together(
            partial(call, "patch", f"{GROUPS}/{was.pk}", secret, leave),
            partial(call, "patch", f"{GROUPS}/{will.pk}", secret, join),
        )

        # then both applied, and she is a room admin: the second to reach her row read the
        # first's membership after it committed, never before
        assert [o.error for o in outcomes] == [None, None]
        assert [o.value.status_code for o in outcomes] == [200, 200]
        assert members_of(will) == {alice.pk}
        assert members_of(was) == set()
        assert Role.ROOM_ADMIN.value in held(alice)


@pytest.mark.django_db
def test_provisioning_never_makes_anyone_a_security_admin() -> None:
    # given a person, and a role map naming the security admins' group
    _, secret = provisioner()
    eve = make_user(username="eve")

    # when the provider puts her into that group
    create(secret, "0f6e-secadmins", eve)

    # then she is not a security admin (provisioning could never take it back), and the
    # role is recorded as held back
    assert Role.SECURITY_ADMIN.value not in held(eve)
    reasons = [h for e in applied() for h in e.extra["held_back"]]
    assert {"role": "security_admin", "reason": "security admin"} in reasons
