"""Four eyes under real concurrency on PostgreSQL: two officers decide one export request
at the same instant, each in its own session; exactly one decision stands."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from compliance.models import ExportRequest
from compliance.services import (
    ComplianceRefused,
    export_approve,
    export_download,
    export_refuse,
    export_request,
    export_run,
)
from compliance.services import exports as exports_module
from tests.compliance.factories import make_officer
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only("two decisions of one request, in separate sessions"),
]


def a_request() -> ExportRequest:
    return export_request(
        actor=make_officer(),
        matter="SEC v. Bank 2026-17",
        reason="subpoena",
        rooms=[make_room()],
        starts_on=timezone.now().date() - timedelta(days=3),
        ends_on=timezone.now().date(),
    )


def slow_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision that holds the row lock dawdles, so the other surely waits on it."""
    real = exports_module.export_scope_digest  # type: ignore[attr-defined]

    def slow(export: ExportRequest) -> Any:
        time.sleep(0.3)
        return real(export)

    monkeypatch.setattr(exports_module, "export_scope_digest", slow)


def test_two_approvals_at_once_only_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a request and two other officers
    export = a_request()
    second, third = make_officer(), make_officer()
    slow_digest(monkeypatch)

    # when both approve it at the same instant
    outcomes = run_together(
        lambda: export_approve(actor=second, export=export, scope_digest=export.scope_digest),
        lambda: export_approve(actor=third, export=export, scope_digest=export.scope_digest),
    )

    # then one approval stands, the other was told it was decided, and both are on record
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], ComplianceRefused)
    assert "already decided" in str(errors[0])
    export.refresh_from_db()
    winner = second if outcomes[0].error is None else third
    assert export.state == ExportRequest.State.APPROVED
    assert export.decided_by == winner
    assert AuditEvent.objects.filter(action="export.approved").count() == 1
    refusal = AuditEvent.objects.get(action="export.action.refused")
    assert refusal.extra["reason"] == "already decided"


def test_an_approval_and_a_refusal_at_once_one_decision_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export = a_request()
    second, third = make_officer(), make_officer()
    slow_digest(monkeypatch)

    outcomes = run_together(
        lambda: export_approve(actor=second, export=export, scope_digest=export.scope_digest),
        lambda: export_refuse(actor=third, export=export, reason="overbroad"),
    )

    assert sum(o.error is None for o in outcomes) == 1
    export.refresh_from_db()
    assert export.state in (ExportRequest.State.APPROVED, ExportRequest.State.REFUSED)
    decided = AuditEvent.objects.filter(action__in=["export.approved", "export.refused"])
    assert decided.count() == 1
    assert AuditEvent.objects.filter(action="export.action.refused").count() == 1


def test_two_downloads_of_the_last_allowed_one_at_once_only_one_is_served() -> None:
    # given a finished export that may be downloaded once
    owner = make_officer()
    room = make_room()
    today = timezone.now().date()
    export = export_request(
        actor=owner, matter="m", reason="r", rooms=[room], starts_on=today, ends_on=today,
        max_downloads=1,
    )  # fmt: skip
    export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)
    export_run(export_id=export.pk)

    # when its requester downloads it twice at the same instant
    outcomes = run_together(
        lambda: export_download(actor=owner, export=export),
        lambda: export_download(actor=owner, export=export),
    )

    # then one is served and counted, the other refused and audited
    assert sum(o.error is None for o in outcomes) == 1
    assert ExportRequest.objects.get(pk=export.pk).downloads == 1
    assert AuditEvent.objects.filter(action="export.downloaded").count() == 1
    refusal = AuditEvent.objects.get(action="export.action.refused")
    assert refusal.extra["reason"] == "download limit"
