"""Roles and information-barrier groups from the provider's groups, applied at each
sign-in through it (the configured mapping), against the real OpenID Connect provider
(``tests/oidc_provider``): granted, revoked, held back by the rules, audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from pytest_django import Settings

from accounts.roles import Role
from tests.accounts import test_sso_saml as saml
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role
from tests.accounts.test_sso_oidc import configure, linked_person, sign_in
from tests.support.oidc import OidcProviderServer
from tests.support.saml import SamlIdp

pytest_plugins = ["tests.accounts.test_sso_oidc", "tests.accounts.test_sso_saml"]

ROLE_MAP = (("cn=chat-room-admins", "room_admin"), ("cn=chat-secadmins", "security_admin"))
GROUP_MAP = (("cn=research", "Research"), ("cn=sales", "Sales"))


def held(user_id: int) -> set[str]:
    return set(Group.objects.filter(user__pk=user_id).values_list("name", flat=True))


@pytest.fixture
def mapped(provider: OidcProviderServer, settings: Settings) -> OidcProviderServer:
    configure(settings, provider, role_map=ROLE_MAP, barrier_group_map=GROUP_MAP)
    Group.objects.get_or_create(name="Research")
    Group.objects.get_or_create(name="Sales")
    return provider


@pytest.mark.django_db
def test_a_sign_in_grants_the_mapped_role_and_barrier_group(mapped: OidcProviderServer) -> None:
    # given a linked person whose provider groups name a mapped role and group
    user, _ = linked_person(mapped, "olga")
    grant_role(user, Role.MEMBER)
    mapped.behave(claims={"groups": ["cn=chat-room-admins", "cn=research", "cn=unmapped"]})

    # when they sign in
    sign_in(Client(), mapped, "olga")

    # then they hold the role and the group, and the change is audited once
    assert held(user.pk) == {"member", "room_admin", "Research"}
    [event] = events("account.idp_access.applied")
    assert event.actor_id is None
    assert event.extra["provider"] == "bank"
    assert event.extra["roles_granted"] == ["room_admin"]
    assert event.extra["groups_added"] == ["Research"]
    assert event.extra["held_back"] == []


@pytest.mark.django_db
def test_a_group_no_longer_asserted_is_taken_away_and_unmanaged_ones_stay(
    mapped: OidcProviderServer,
) -> None:
    # given a person holding a mapped role and group, and a role the mapping does not name
    user, _ = linked_person(mapped, "pavel")
    grant_role(user, Role.COMPLIANCE_OFFICER)
    user.groups.add(
        Group.objects.get(name="Sales"), Group.objects.get_or_create(name="room_admin")[0]
    )
    mapped.behave(claims={"groups": []})

    # when they sign in and the provider asserts neither
    sign_in(Client(), mapped, "pavel")

    # then both mapped ones are gone, the unmanaged role kept
    assert held(user.pk) == {"compliance_officer"}
    event = events("account.idp_access.applied")[-1]
    assert event.extra["roles_revoked"] == ["room_admin"]
    assert event.extra["groups_removed"] == ["Sales"]


@pytest.mark.django_db
def test_nothing_changed_is_not_recorded(mapped: OidcProviderServer) -> None:
    user, _ = linked_person(mapped, "quinn")
    user.groups.add(Group.objects.get(name="Research"))
    mapped.behave(claims={"groups": ["cn=research"]})

    sign_in(Client(), mapped, "quinn")

    assert held(user.pk) == {"Research"}
    assert not events("account.idp_access.applied")


@pytest.mark.django_db
def test_an_incompatible_role_and_the_last_security_admin_are_held_back(
    mapped: OidcProviderServer, settings: Settings
) -> None:
    # given a compliance officer asserted into the security admins' group, and the only
    # security admin, whom the provider no longer asserts as one
    officer, _ = linked_person(mapped, "rosa")
    grant_role(officer, Role.COMPLIANCE_OFFICER)
    admin, _ = linked_person(mapped, "sam")
    grant_role(admin, Role.SECURITY_ADMIN)

    mapped.behave(claims={"groups": ["cn=chat-secadmins"]})
    sign_in(Client(), mapped, "rosa")
    mapped.behave(claims={"groups": []})
    sign_in(Client(), mapped, "sam")

    # then neither change is made, each held back with its reason, and both signed in
    assert held(officer.pk) == {"compliance_officer"}
    assert held(admin.pk) == {"security_admin"}
    first, second = events("account.idp_access.applied")
    assert first.extra["held_back"] == [{"role": "security_admin", "reason": "incompatible roles"}]
    assert second.extra["held_back"] == [
        {"role": "security_admin", "reason": "last security admin"}
    ]
    assert len(events("auth.federated.verified")) == 2


@pytest.mark.django_db
def test_a_mapped_group_that_does_not_exist_is_held_back(
    provider: OidcProviderServer, settings: Settings
) -> None:
    configure(settings, provider, barrier_group_map=(("cn=legal", "Legal"),))
    user, _ = linked_person(provider, "tara")
    provider.behave(claims={"groups": ["cn=legal"]})

    sign_in(Client(), provider, "tara")

    assert held(user.pk) == set()
    assert not Group.objects.filter(name="Legal").exists()
    assert events("account.idp_access.applied")[-1].extra["held_back"] == [
        {"group": "Legal", "reason": "unknown group"}
    ]


@pytest.mark.django_db
def test_without_a_mapping_the_groups_claim_changes_nothing(provider: OidcProviderServer) -> None:
    user, _ = linked_person(provider, "uma")
    provider.behave(claims={"groups": ["cn=chat-secadmins"]})

    sign_in(Client(), provider, "uma")

    assert held(user.pk) == set()
    assert not events("account.idp_access.applied")


@pytest.mark.django_db
def test_a_saml_sign_in_maps_the_idps_group_attribute(idp: SamlIdp, settings: Settings) -> None:
    # given a SAML IdP whose memberOf attribute names a mapped role and group
    saml.configure(settings, idp, role_map=ROLE_MAP, barrier_group_map=GROUP_MAP)
    Group.objects.get_or_create(name="Sales")
    user, subject = saml.linked_person("vera")

    # when the person signs in
    saml.sign_in(
        Client(), idp, subject,
        attributes={"memberOf": ["cn=chat-room-admins", "cn=sales"]},
    )  # fmt: skip

    # then the role and group are theirs, audited
    assert held(user.pk) == {"room_admin", "Sales"}
    assert events("account.idp_access.applied")[-1].extra["provider"] == saml.KEY
