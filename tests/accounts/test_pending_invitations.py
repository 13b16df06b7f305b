"""The Users page lists the invitations still waiting for their invitee (who invited,
when, until when, as which role) and lets a security admin revoke one, through
``invitation_revoke``: the link creates nothing from then on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, User
from accounts.roles import Role
from accounts.services import invitation_create, invitation_revoke
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role, make_user
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db


def invite(by: User, email: str, role: Role = Role.MEMBER) -> tuple[Invitation, str]:
    return invitation_create(actor=by, email=email, role=role)


def pending_rows(page: str) -> str:
    start = page.index('<table id="pending-invitations">')
    return page[start : page.index("</table>", start)]


def test_the_users_page_lists_pending_invitations_only(
    admin_client: Client, security_admin: User
) -> None:
    # given invitations: one waiting, one accepted, one revoked, one expired
    security_admin.first_name, security_admin.last_name = "Sam", "Ng"
    security_admin.save()
    waiting, _ = invite(security_admin, "waiting@bank.example", Role.ROOM_ADMIN)
    accepted, _ = invite(security_admin, "accepted@bank.example")
    Invitation.objects.filter(pk=accepted.pk).update(accepted_at=timezone.now())
    revoked, _ = invite(security_admin, "revoked@bank.example")
    invitation_revoke(actor=security_admin, invitation=revoked)
    expired, _ = invite(security_admin, "expired@bank.example")
    Invitation.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    # when the security admin opens the Users page
    response = admin_client.get("/accounts/admin/users/")

    # then only the waiting one is listed, with its role's label, who sent it, when and
    # until when, and a way to revoke it
    assert response.status_code == 200
    rows = pending_rows(response.content.decode())
    assert "waiting@bank.example" in rows
    assert "Room admin" in rows
    assert "room_admin" not in rows
    assert "<bdi>Sam Ng</bdi>" in rows
    assert "@<bdi>secadmin</bdi>" in rows
    assert f'datetime="{waiting.created_at.isoformat()}"' in rows
    assert f'datetime="{waiting.expires_at.isoformat()}"' in rows
    assert f'action="/accounts/admin/invitations/{waiting.pk}/revoke/"' in rows
    for other in ("accepted@", "revoked@", "expired@"):
        assert other not in rows
    # and never the link itself
    assert "/accounts/invitation/" not in rows


def test_with_nothing_pending_the_page_says_so(admin_client: Client) -> None:
    rows = pending_rows(admin_client.get("/accounts/admin/users/").content.decode())

    assert "No pending invitation." in rows


def test_a_security_admin_revokes_an_invitation_from_the_page(
    admin_client: Client, security_admin: User
) -> None:
    # given a pending invitation whose link works
    invitation, token = invite(security_admin, "wrong@bank.example")
    assert Client().get(f"/accounts/invitation/{token}/").status_code == 200

    # when the security admin revokes it from the Users page
    response = admin_client.post(
        f"/accounts/admin/invitations/{invitation.pk}/revoke/", follow=True
    )

    # then it is revoked by them, on the record, gone from the list, and its link is dead
    assert response.status_code == 200
    said = [str(m) for m in response.context["messages"]]
    assert said == ["The invitation of wrong@bank.example is revoked: its link creates nothing."]
    invitation.refresh_from_db()
    assert invitation.revoked_by_id == security_admin.pk
    assert [e.extra for e in events("account.invitation.revoked")] == [
        {"email": "wrong@bank.example", "role": "member"}
    ]
    assert "wrong@bank.example" not in pending_rows(response.content.decode())
    assert Client().get(f"/accounts/invitation/{token}/").status_code == 404
    assert [e.extra["reason"] for e in events("account.invitation.refused")] == ["revoked"]


def test_revoking_an_invitation_closed_meanwhile_changes_and_records_nothing(
    admin_client: Client, security_admin: User
) -> None:
    invitation, _ = invite(security_admin, "gone@bank.example")
    invitation_revoke(actor=security_admin, invitation=invitation)

    response = admin_client.post(
        f"/accounts/admin/invitations/{invitation.pk}/revoke/", follow=True
    )

    assert [str(m) for m in response.context["messages"]] == [
        "That invitation was accepted, revoked or expired already."
    ]
    assert len(events("account.invitation.revoked")) == 1


def test_an_id_naming_no_invitation_is_a_404_for_a_security_admin(
    admin_client: Client,
) -> None:
    response = admin_client.post("/accounts/admin/invitations/999999/revoke/")

    assert response.status_code == 404
    assert not events("account.invitation.revoked")


@pytest.mark.parametrize("exists", [True, False])
def test_someone_else_is_refused_the_same_for_every_id_and_revokes_nothing(
    security_admin: User, exists: bool
) -> None:
    # given a pending invitation, and a room admin who may not administer people
    invitation, token = invite(security_admin, "keep@bank.example")
    rita = grant_role(make_user(username="rita"), Role.ROOM_ADMIN)
    target = invitation.pk if exists else invitation.pk + 1000

    # when they post a revocation
    response = verified_client(rita).post(f"/accounts/admin/invitations/{target}/revoke/")

    # then the same refusal whether the id exists or not, on the record, nothing revoked
    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None
    assert not events("account.invitation.revoked")
    assert [e.extra["reason"] for e in events("account.admin.refused")] == ["permission"]
    assert Client().get(f"/accounts/invitation/{token}/").status_code == 200
    # and the Users page shows them nothing
    assert verified_client(rita).get("/accounts/admin/users/").status_code == 403
