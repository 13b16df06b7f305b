"""A read-only audit browser for compliance officers.

Nobody, superusers included, can add, change or delete through the admin: the
permission hooks all answer False and there is no delete action. Viewing needs
``audit.view_auditevent``. Each search or filter is itself recorded
(``audit.searched``); the export action is recorded (``audit.exported``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse

from audit.actions import AuditAction
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_export_start
from audit.services.searches import audit_search_record
from safechat.admin_base import ReadOnlyAdmin

# Changelist parameters that page or sort rather than search or filter.
_NOT_A_FILTER = frozenset({"p", "o", "e", "_to_field", "_popup", "all"})


class ActionFilter(admin.SimpleListFilter):
    """Filter by catalogue action (without scanning the table for distinct values)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(action.value, action.value) for action in AuditAction]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(action=value) if value else queryset


def _search_record(request: HttpRequest) -> None:
    """Record the search and filters of a changelist view by the requesting officer."""
    audit_search_record(
        actor=request.user,
        query=request.GET.get("q", ""),
        filters=[
            (name, str(value))
            for name, value in request.GET.items()
            if name != "q" and name not in _NOT_A_FILTER
        ],
        model="auditevent",
        request=request,
    )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "action",
        "actor_username",
        "actor_type",
        "target_type",
        "target_id",
        "source_ip",
        "request_id",
    )
    list_filter = (
        ActionFilter,
        "target_type",
        "actor_type",
        ("occurred_at", admin.DateFieldListFilter),
    )
    # Exact matches use the indexes; a contains-search would scan millions of rows.
    search_fields = ("=actor_username", "=target_id", "=request_id")
    search_help_text = "Exact actor username, target id or request id."
    ordering = ("-seq",)
    list_per_page = 100
    # Counting millions of rows on every page view is slow; "show all" is not needed.
    show_full_result_count = False
    actions = ("export_selected_range",)
    fields = (
        "seq",
        "occurred_at",
        "action",
        "actor_type",
        "actor_id",
        "actor_username",
        "target_type",
        "target_id",
        "source_ip",
        "user_agent",
        "request_id",
        "extra",
        "prev_hash",
        "hash",
        "version",
    )
    readonly_fields = fields

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and isinstance(response, TemplateResponse):
            # Only a page that was actually shown (permission granted) is a search.
            _search_record(request)
        return response

    @admin.action(
        description="Export the selected range (JSONL, verifiable offline)",
        permissions=("view",),
    )
    def export_selected_range(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent]
    ) -> HttpResponse | StreamingHttpResponse:
        bounds = queryset.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
        if bounds["first"] is None:
            self.message_user(request, "Nothing selected.")
            return HttpResponse(status=204)
        export = audit_export_start(
            actor=request.user,
            since=bounds["first"],
            until=bounds["last"] + timedelta(microseconds=1),
            format="jsonl",
            via="admin",
            request=request,
        )
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["Cache-Control"] = "no-store"
        return response


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "key_id", "head_hash")
    ordering = ("-seq",)
    show_full_result_count = False
    fields = ("seq", "head_hash", "created_at", "key_id", "signature")
    readonly_fields = fields
