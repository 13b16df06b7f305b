"""Every refusal a signed-in person meets is on the record once: a service records its
own; a 403 decided at an edge (a token's scope, a page's or the admin's permission)
is recorded as ``access.refused``, naming the route and never the path's values."""

from __future__ import annotations

import pytest
from django.test import Client
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from accounts.services import api_token_create
from audit.models import AuditEvent
from rooms.models import Room
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def verified(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def refusals_after(seq: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(seq__gt=seq, action__regex=r"\.(refused|denied)$").order_by("seq")
    )


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


@pytest.mark.parametrize(
    ("who", "method", "path", "route"),
    [
        (Role.MEMBER, "get", "/api/v1/audit/export", "api/v1/audit/export"),
        (Role.SECURITY_ADMIN, "get", "/admin/audit/auditevent/", "admin/audit/auditevent/"),
        (Role.MEMBER, "get", "/accounts/admin/users/", "accounts/admin/users/"),
    ],
)
def test_a_permission_refused_at_an_edge_is_recorded_once(
    who: Role, method: str, path: str, route: str
) -> None:
    # given a signed-in person without the permission the page needs
    person = grant_role(make_user(), who)
    client = verified(person)
    before = last_seq()

    # when they ask for it
    answer = getattr(client, method)(path)

    # then it is refused, and exactly that refusal is on the record
    assert answer.status_code == 403
    (refusal,) = refusals_after(before)
    assert refusal.action == "access.refused"
    assert refusal.actor_id == person.pk
    assert refusal.extra["route"].endswith(route)
    assert refusal.extra["method"] == method.upper()
    assert refusal.request_id


def test_a_token_refused_by_its_scope_is_recorded_with_the_token() -> None:
    # given a read-scope token
    person = grant_role(make_user(), Role.ROOM_ADMIN)
    token, secret = api_token_create(actor=person, name="reader", scope="read")
    before = last_seq()

    # when it tries to create a room and to mint an admin token
    created = Client().post(
        "/api/v1/rooms/create/", {"name": "Nope"},
        headers={"Authorization": f"Bearer {secret}"}, content_type="application/json",
    )  # fmt: skip
    minted = Client().post(
        "/api/v1/accounts/tokens/", {"name": "wider", "scope": "admin"},
        headers={"Authorization": f"Bearer {secret}"}, content_type="application/json",
    )  # fmt: skip

    # then both are refused, each on the record with the token that asked, and nothing made
    assert created.status_code == minted.status_code == 403
    refusals = refusals_after(before)
    assert [e.action for e in refusals] == ["access.refused", "access.refused"]
    assert {e.token_id for e in refusals} == {token.pk}
    assert {e.channel for e in refusals} == {"api"}
    assert not Room.objects.exists()


def test_a_refusal_a_service_recorded_is_not_recorded_twice() -> None:
    # given a room member who is not its owner
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    before = last_seq()

    # when they try to archive it (refused by the service, which records it)
    answer = verified(member).post(
        f"/api/v1/rooms/{room.pk}/archive/", content_type="application/json"
    )

    # then one refusal is on the record: the service's
    assert answer.status_code == 403
    assert [e.action for e in refusals_after(before)] == ["room.access.denied"]


def test_an_anonymous_refusal_names_nobody_and_is_not_recorded() -> None:
    before = last_seq()

    answer = Client(enforce_csrf_checks=True).post("/accounts/sign-in/", {})

    assert answer.status_code == 403
    assert refusals_after(before) == []


def test_refusals_at_the_edge_are_recorded_up_to_a_limit_then_once_as_throttled(
    settings: Settings,
) -> None:
    # given a member, and a limit of three recorded refusals a minute
    settings.SAFECHAT_ACCESS_REFUSAL_AUDIT_LIMIT = (3, 60)
    client = verified(grant_role(make_user(), Role.MEMBER))
    before = last_seq()

    # when they are refused ten times
    answers = [client.get("/api/v1/audit/export").status_code for _ in range(10)]

    # then each is refused; three are on the record, the last of them marked throttled
    assert answers == [403] * 10
    recorded = refusals_after(before)
    assert [e.extra.get("throttled", False) for e in recorded] == [False, False, True]


def test_a_refusal_records_an_odd_method_as_other() -> None:
    client = verified(grant_role(make_user(), Role.MEMBER))
    before = last_seq()

    answer = client.generic("X" * 5000, "/api/v1/audit/export")

    assert answer.status_code in {403, 405}
    assert {e.extra["method"] for e in refusals_after(before)} <= {"other"}
