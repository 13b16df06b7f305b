"""The compliance officer's dashboard: counts over time, never content.

Everything here is a count or a state (holds, the supervision queue, exports, retention
runs, messages and audit events per day); nothing is decrypted, so reading it opens no
key and is not a compliance read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from compliance.models import (
    ExportRequest,
    LegalHold,
    RetentionRun,
    SupervisionItem,
    SupervisionLexicon,
)
from rooms.models import Message

DASHBOARD_PERMISSIONS = ("compliance.supervise", "compliance.review_content")
DAYS_DEFAULT = 30
RUNS_SHOWN = 20


@dataclass(frozen=True)
class Series:
    label: str
    values: list[int]


@dataclass(frozen=True)
class Chart:
    """One chart: ``kind`` ``line`` or ``bar``, its labels (x axis) and series."""

    id: str
    title: str
    kind: str
    labels: list[str]
    series: list[Series]

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        """The chart as a table: each label with its value in every series."""
        return [(label, [s.values[i] for s in self.series]) for i, label in enumerate(self.labels)]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "type": self.kind,
            "labels": self.labels,
            "datasets": [{"label": s.label, "data": s.values} for s in self.series],
        }


@dataclass(frozen=True)
class Dashboard:
    days: list[date]
    figures: dict[str, int]
    charts: list[Chart] = field(default_factory=list)


def _per_day(queryset: QuerySet[Any], field_name: str, days: list[date]) -> list[int]:
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    counted = {
        row["day"]: row["n"]
        for row in queryset.filter(**{f"{field_name}__gte": start})
        .annotate(day=TruncDate(field_name, tzinfo=UTC))
        .values("day")
        .annotate(n=Count("pk"))
        .values("day", "n")
    }
    return [counted.get(day, 0) for day in days]


def compliance_dashboard(*, officer: User, days: int = DAYS_DEFAULT) -> Dashboard:
    """The figures and charts of the last ``days`` UTC days (today included).

    Raises ``PermissionDenied`` unless the officer is active and holds
    ``compliance.supervise`` or ``compliance.review_content``."""
    if not (officer.is_active and any(officer.has_perm(p) for p in DASHBOARD_PERMISSIONS)):
        raise PermissionDenied("only a compliance officer sees the compliance dashboard")
    today = timezone.now().astimezone(UTC).date()
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    labels = [d.isoformat() for d in span]

    queue = SupervisionItem.objects.aggregate(
        pending=Count("pk", filter=Q(state=SupervisionItem.State.PENDING)),
        escalated=Count("pk", filter=Q(state=SupervisionItem.State.ESCALATED)),
        closed=Count("pk", filter=Q(state=SupervisionItem.State.CLOSED)),
    )
    exports = dict(
        ExportRequest.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n")
    )
    figures = {
        "holds_active": LegalHold.objects.filter(released_at__isnull=True).count(),
        "queue_pending": queue["pending"],
        "queue_escalated": queue["escalated"],
        "queue_closed": queue["closed"],
        "exports_awaiting_approval": exports.get(ExportRequest.State.REQUESTED, 0),
        "exports_ready": exports.get(ExportRequest.State.FINISHED, 0),
        "retention_runs": RetentionRun.objects.filter(dry_run=False).count(),
    }

    lexicons = list(
        SupervisionLexicon.objects.annotate(n=Count("items"))
        .order_by("name")
        .values_list("name", "n")
    )
    runs = list(
        RetentionRun.objects.filter(dry_run=False).order_by("-started_at", "-pk")[:RUNS_SHOWN]
    )
    runs.reverse()
    export_states = [state for state, _ in ExportRequest.State.choices]
    charts = [
        Chart(
            "messages-per-day",
            "Messages per day",
            "line",
            labels,
            [Series("messages", _per_day(Message.objects.all(), "created_at", span))],
        ),
        Chart(
            "review-per-day",
            "Supervision: messages queued per day",
            "bar",
            labels,
            [
                Series(
                    "flagged",
                    _per_day(SupervisionItem.objects.filter(reason="flagged"), "created_at", span),
                ),
                Series(
                    "sampled",
                    _per_day(SupervisionItem.objects.filter(reason="sampled"), "created_at", span),
                ),
                Series(
                    "closed",
                    _per_day(
                        SupervisionItem.objects.filter(closed_at__isnull=False), "closed_at", span
                    ),
                ),
            ],
        ),
        Chart(
            "review-queue",
            "Supervision queue",
            "bar",
            ["pending", "escalated", "closed"],
            [Series("items", [queue["pending"], queue["escalated"], queue["closed"]])],
        ),
        Chart(
            "flags-per-lexicon",
            "Flags per lexicon",
            "bar",
            [name for name, _ in lexicons],
            [Series("flagged messages", [n for _, n in lexicons])],
        ),
        Chart(
            "exports",
            "eDiscovery exports by state",
            "bar",
            export_states,
            [Series("exports", [exports.get(s, 0) for s in export_states])],
        ),
        Chart(
            "holds-per-day",
            "Legal holds placed and released per day",
            "bar",
            labels,
            [
                Series("placed", _per_day(LegalHold.objects.all(), "placed_at", span)),
                Series(
                    "released",
                    _per_day(
                        LegalHold.objects.filter(released_at__isnull=False), "released_at", span
                    ),
                ),
            ],
        ),
        Chart(
            "retention-runs",
            f"Retention runs (last {RUNS_SHOWN}): messages and files purged",
            "bar",
            [f"{r.pk} {r.started_at:%Y-%m-%d} {r.state}" for r in runs],
            [
                Series("messages", [r.messages for r in runs]),
                Series("files", [r.files for r in runs]),
            ],
        ),
        Chart(
            "audit-per-day",
            "Audit events per day",
            "line",
            labels,
            [Series("events", _per_day(AuditEvent.objects.all(), "occurred_at", span))],
        ),
    ]
    return Dashboard(days=span, figures=figures, charts=charts)
