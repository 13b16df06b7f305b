"""A read-only audit browser for compliance officers.

Nobody, superusers included, can add, change or delete through the admin: the
permission hooks all answer False and there is no delete action. Viewing needs
``audit.view_auditevent``. Each search or filter is itself recorded
(``audit.searched``); the export action is recorded (``audit.exported``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Max, Min, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.actions import AuditAction
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_export_start
from audit.services.searches import audit_search_record
from safechat.admin_base import ReadOnlyAdmin
from safechat.streaming import streamed_body

# Changelist parameters that page or sort rather than search or filter.
_NOT_A_FILTER = frozenset({"p", "o", "e", "_to_field", "_popup", "all"})
# Apps whose rows the audit log names as targets.
_TARGET_APPS = frozenset(
    {"accounts", "rooms", "files", "audit", "keyring", "auth", "otp_totp", "otp_static",
     "django_otp_webauthn"}
)  # fmt: skip


class TargetTypeFilter(admin.SimpleListFilter):
    """Filter by the kind of target, offered from the installed models (no table scan).

    Events without a target (``audit.searched``, sign-in failures) have a blank target
    type; Django's field filter lists that as an empty, unnamed link, so it is offered
    here by name instead.
    """

    title = "target type"
    parameter_name = "target_type"
    NONE = "-"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        labels = sorted(
            model._meta.label_lower
            for model in apps.get_models()
            if model._meta.app_label in _TARGET_APPS
        )
        return [(self.NONE, "no target"), *((label, label) for label in labels)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(target_type="" if value == self.NONE else value)


def _target_name(obj: models.Model) -> str:
    """What a person calls a target: its name, and the names of the room and person it
    belongs to; never content (a message is named by its room and sender only)."""
    own = next(
        (value for attr in ("name", "username", "email", "prefix")
         if isinstance(value := getattr(obj, attr, None), str) and value),
        None,
    )  # fmt: skip
    label = f"{obj._meta.verbose_name} {own or obj.pk}"
    context = []
    # A barrier's two sides are its groups by name, never the columns' names.
    sides = [
        getattr(obj, f"{side}_id", None) and getattr(obj, side) for side in ("group_a", "group_b")
    ]
    if all(sides):
        context.append("between " + " and ".join(str(getattr(g, "name", g)) for g in sides))
    for relation in ("room", "sender", "user", "invitee"):
        field = next((f for f in obj._meta.fields if f.name == relation), None)
        if field is None or not getattr(obj, f"{relation}_id", None):
            continue
        related = getattr(obj, relation)
        related_name = getattr(related, "name", "") or getattr(related, "username", "")
        if related_name:
            context.append(f"{relation} {related_name}")
    return f"{label} ({', '.join(context)})" if context else label


def _gone_context(event: AuditEvent) -> str:
    """For a target since deleted, what its event recorded of it: a lifted barrier's
    two groups (``extra.group_a``, ``extra.group_b``), by their names now."""
    ids = [event.extra.get(key) for key in ("group_a", "group_b")]
    if not all(isinstance(pk, int) for pk in ids):
        return ""
    names = dict(Group.objects.filter(pk__in=ids).values_list("pk", "name"))
    return "; groups " + " and ".join(names.get(pk, f"#{pk}") for pk in ids)


def _target_lookup(target_type: str, target_id: str) -> models.Model | None:
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return None
    try:
        found: models.Model | None = model._default_manager.filter(pk=target_id).first()
    except (ValueError, TypeError, ValidationError):
        return None
    return found


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
        "actor",
        "actor_type",
        "target",
        "channel",
        "source_ip",
        "request_id",
        "token_id",
    )
    list_filter = (
        ActionFilter,
        TargetTypeFilter,
        "actor_type",
        "channel",
        ("occurred_at", admin.DateFieldListFilter),
    )
    # Exact matches use the indexes; a contains-search would scan millions of rows.
    search_fields = ("=actor_username", "=target_id", "=request_id", "=token_id")
    search_help_text = "Exact actor username, target id, request id or API token id."
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
        "actor",
        "target_type",
        "target_id",
        "target",
        "channel",
        "source_ip",
        "user_agent",
        "request_id",
        "token_id",
        "extra",
        "prev_hash",
        "hash",
        "version",
    )
    readonly_fields = fields

    @admin.display(description="actor", ordering="actor_username")
    def actor(self, obj: AuditEvent) -> str:
        """A person who acted by the name they had then, linked to their admin page as a
        target is (the page checks the viewer's right); a system actor by its name."""
        name = obj.actor_username or obj.actor_type
        user_model = get_user_model()
        if obj.actor_type != AuditEvent.ACTOR_USER or obj.actor_id is None:
            return name
        if user_model not in self.admin_site._registry:
            return name
        meta = user_model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.actor_id])
        return format_html('<a href="{}">{}</a>', url, name)

    @admin.display(description="target")
    def target(self, obj: AuditEvent) -> str:
        """The target by name, linked to its admin page (which checks the viewer's right)."""
        if not obj.target_type:
            return "-"
        found = _target_lookup(obj.target_type, obj.target_id)
        if found is None:
            return f"{obj.target_type} {obj.target_id} (no longer exists{_gone_context(obj)})"
        name = _target_name(found)
        if type(found) not in self.admin_site._registry:
            # A message, a file, a key copy: no page of its own, so the link goes to the
            # room it belongs to (whose page checks the viewer's right in turn).
            room = getattr(found, "room", None) if getattr(found, "room_id", None) else None
            if room is None or type(room) not in self.admin_site._registry:
                return name
            found = room
        meta = found._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[found.pk])
        return format_html('<a href="{}">{}</a>', url, name)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and isinstance(response, TemplateResponse):
            # Only a page that was actually shown (permission granted) is a search.
            _search_record(request)
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and isinstance(response, TemplateResponse):
            # Opening one event is a reading of the log like a search: on the record,
            # with the event it opened (only a page actually shown).
            audit_search_record(
                actor=request.user,
                query="",
                filters=[("seq", str(object_id))],
                model="auditevent",
                request=request,
            )
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
        response = StreamingHttpResponse(
            streamed_body(request, export.chunks), content_type=export.content_type
        )
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
