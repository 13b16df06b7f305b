"""eDiscovery export requests under four eyes (issue 20): one officer asks, another
decides, naming the exact scope; every step and every refused attempt is audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from compliance.models import ExportRequest
from compliance.selectors.exports import export_scope_digest
from compliance.services import (
    ComplianceRefused,
    export_approve,
    export_refuse,
    export_request,
)
from tests.accounts.factories import make_user, sign_in_client
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

REFUSED = "export.action.refused"


def today() -> date:
    return timezone.now().date()


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_since(seq: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True)
    )


def a_request(officer: User | None = None, **fields: object) -> ExportRequest:
    room = make_room(name="Treasury")
    custodian = make_user()
    values: dict[str, object] = {
        "matter": "SEC v. Bank 2026-17",
        "reason": "subpoena of 3 March",
        "rooms": [room],
        "custodians": [custodian],
        "starts_on": today() - timedelta(days=30),
        "ends_on": today(),
    }
    values.update(fields)
    return export_request(actor=officer or make_officer(), **values)  # type: ignore[arg-type]


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def test_a_request_records_its_scope_and_waits_for_a_second_officer() -> None:
    officer = make_officer()
    seq = last_seq()

    export = a_request(officer)

    assert export.state == ExportRequest.State.REQUESTED
    assert export.requested_by == officer
    assert export.scope_digest == export_scope_digest(export)
    assert export.max_downloads == 3
    (event,) = AuditEvent.objects.filter(seq__gt=seq, action__startswith="export.")
    assert event.action == "export.requested"
    assert event.extra["scope_digest"] == export.scope_digest
    assert event.extra["rooms"] == list(export.rooms.values_list("pk", flat=True))


def test_a_second_officer_approves_naming_the_scope() -> None:
    export = a_request()
    second = make_officer()
    seq = last_seq()

    approved = export_approve(actor=second, export=export, scope_digest=export.scope_digest)

    assert approved.state == ExportRequest.State.APPROVED
    assert approved.decided_by == second
    assert approved.decided_at is not None
    assert events_since(seq) == ["export.approved"]


def test_a_second_officer_refuses_with_a_reason() -> None:
    export = a_request()
    seq = last_seq()

    refused = export_refuse(actor=make_officer(), export=export, reason="overbroad")

    assert refused.state == ExportRequest.State.REFUSED
    assert refused.decision_note == "overbroad"
    assert events_since(seq) == ["export.refused"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"matter": "  "}, "empty matter"),
        ({"reason": ""}, "empty reason"),
        ({"rooms": [], "custodians": []}, "nothing to export"),
        ({"starts_on": None}, "no range"),
        (
            {"starts_on": date(2026, 3, 2), "ends_on": date(2026, 3, 1)},
            "range ends before it starts",
        ),
        ({"ends_on": datetime.now(tz=UTC).date() + timedelta(days=2)}, "range in the future"),
        ({"max_downloads": 0}, "download limit"),
        ({"recipient_public_key": "not base64!"}, "bad recipient key"),
    ],
)
def test_a_bad_request_is_refused_with_nothing_stored_and_audited(
    fields: dict[str, object], reason: str
) -> None:
    officer = make_officer()
    seq = last_seq()

    with pytest.raises(ComplianceRefused):
        a_request(officer, **fields)

    assert not ExportRequest.objects.exists()
    (event,) = AuditEvent.objects.filter(seq__gt=seq, action__startswith="export.")
    assert event.action == REFUSED
    assert event.extra["reason"] == reason


def test_nobody_approves_or_refuses_their_own_request() -> None:
    officer = make_officer()
    export = a_request(officer)
    seq = last_seq()

    with pytest.raises(ComplianceRefused, match="second compliance officer"):
        export_approve(actor=officer, export=export, scope_digest=export.scope_digest)
    with pytest.raises(ComplianceRefused, match="second compliance officer"):
        export_refuse(actor=officer, export=export, reason="never mind")

    export.refresh_from_db()
    assert export.state == ExportRequest.State.REQUESTED
    assert export.decided_by is None
    assert events_since(seq) == [REFUSED, REFUSED]
    assert AuditEvent.objects.get(seq=seq + 1).extra["reason"] == "own request"


def test_the_database_refuses_a_self_decision_too() -> None:
    officer = make_officer()
    export = a_request(officer)

    with pytest.raises(IntegrityError), transaction.atomic():
        ExportRequest.objects.filter(pk=export.pk).update(
            state="approved", decided_by=officer, decided_at=timezone.now()
        )


def test_an_approval_of_another_scope_is_refused() -> None:
    # given a request, and a digest of a scope the approver did not get (changed since)
    export = a_request()
    second = make_officer()
    ExportRequest.objects.filter(pk=export.pk).update(ends_on=export.ends_on - timedelta(days=1))
    seq = last_seq()

    with pytest.raises(ComplianceRefused, match="scope"):
        export_approve(actor=second, export=export, scope_digest=export.scope_digest)

    export.refresh_from_db()
    assert export.state == ExportRequest.State.REQUESTED
    assert events_since(seq) == [REFUSED]
    assert AuditEvent.objects.get(seq=seq + 1).extra["reason"] == "scope differs"


def test_a_wrong_digest_is_refused() -> None:
    export = a_request()

    with pytest.raises(ComplianceRefused, match="scope"):
        export_approve(actor=make_officer(), export=export, scope_digest="0" * 64)

    assert ExportRequest.objects.get(pk=export.pk).state == ExportRequest.State.REQUESTED


def test_a_decided_request_is_not_decided_again() -> None:
    export = a_request()
    first = make_officer()
    export_refuse(actor=first, export=export, reason="overbroad")
    seq = last_seq()

    with pytest.raises(ComplianceRefused, match="already decided"):
        export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)

    export.refresh_from_db()
    assert export.state == ExportRequest.State.REFUSED
    assert export.decided_by == first
    assert events_since(seq) == [REFUSED]


def test_people_without_the_permission_neither_request_nor_decide() -> None:
    export = a_request()
    member = make_user()
    seq = last_seq()

    with pytest.raises(ComplianceRefused):
        export_approve(actor=member, export=export, scope_digest=export.scope_digest)
    with pytest.raises(ComplianceRefused):
        a_request(member)

    assert ExportRequest.objects.count() == 1
    assert ExportRequest.objects.get().state == ExportRequest.State.REQUESTED
    assert [a for a in events_since(seq) if a.startswith("export.")] == [REFUSED, REFUSED]


def test_the_admin_walks_request_then_second_officers_approval() -> None:
    # given a room, and two officers
    room = make_room(name="Treasury")
    first, second = make_officer(), make_officer()

    # when the first requests an export in the admin
    response = client_for(first).post(
        "/admin/compliance/exportrequest/add/",
        {
            "matter": "FINRA 2026-4",
            "reason": "exam request",
            "rooms": [room.pk],
            "starts_on": (today() - timedelta(days=7)).isoformat(),
            "ends_on": today().isoformat(),
            "max_downloads": 2,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    export = ExportRequest.objects.get()

    # and the second opens it (the page carries the digest of what it shows) and approves
    second_client = client_for(second)
    page = second_client.get(f"/admin/compliance/exportrequest/{export.pk}/change/")
    assert page.status_code == 200
    assert export.scope_digest in page.content.decode()
    response = second_client.post(
        f"/admin/compliance/exportrequest/{export.pk}/change/",
        {"decision": "approve", "reviewed_digest": export.scope_digest, "decision_note": ""},
    )

    # then it is approved, by the second officer
    assert response.status_code == 302, response.content.decode()[:2000]
    export.refresh_from_db()
    assert export.state == ExportRequest.State.APPROVED
    assert export.decided_by == second


def test_self_approval_in_the_admin_is_told_on_the_page_and_changes_nothing() -> None:
    officer = make_officer()
    export = a_request(officer)
    seq = last_seq()

    response = client_for(officer).post(
        f"/admin/compliance/exportrequest/{export.pk}/change/",
        {"decision": "approve", "reviewed_digest": export.scope_digest, "decision_note": ""},
    )

    assert response.status_code == 200
    assert "second compliance officer" in response.content.decode()
    assert ExportRequest.objects.get(pk=export.pk).state == ExportRequest.State.REQUESTED
    assert [a for a in events_since(seq) if a.startswith("export.")] == [REFUSED]


def test_a_bad_range_in_the_admin_is_told_on_the_page() -> None:
    room = make_room()

    response = client_for(make_officer()).post(
        "/admin/compliance/exportrequest/add/",
        {
            "matter": "m",
            "reason": "r",
            "rooms": [room.pk],
            "starts_on": today().isoformat(),
            "ends_on": (today() - timedelta(days=1)).isoformat(),
        },
    )

    assert response.status_code == 200
    assert "ends before it starts" in response.content.decode()
    assert not ExportRequest.objects.exists()
