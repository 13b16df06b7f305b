"""Retention policies and legal holds for compliance officers; runs and tombstones to read.

Every change goes through ``compliance.services``: the form calls the service when it is
checked, so a refusal (audited by the service) is shown on the form with nothing
changed, and a change is saved, with its audit event, by the service alone.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import BadRequest, PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse

from accounts.models import User
from accounts.selectors import people
from compliance.admin_forms import ServiceForm
from compliance.models import (
    CustodianReview,
    ExportRequest,
    LegalHold,
    MessageTombstone,
    RetentionPolicy,
    RetentionRun,
    RoomReview,
)
from compliance.selectors import tombstones_verify
from compliance.selectors.exports import export_scope_digest
from compliance.selectors.review import (
    REVIEW_CONTENT,
    REVIEW_PAGE_DEFAULT,
    REVIEW_PAGE_MAX,
    ReviewKind,
    ReviewPage,
    content_review_custodian,
    content_review_room,
)
from compliance.services import (
    ComplianceRefused,
    export_approve,
    export_download,
    export_refuse,
    export_request,
    legal_hold_place,
    legal_hold_release,
    retention_apply,
    retention_policy_set,
    retention_run_request,
)
from compliance.services._common import MANAGE_LEGAL_HOLDS, MANAGE_RETENTION
from compliance.services.exports import APPROVE_EXPORT, REQUEST_EXPORT
from compliance.services.policies import KEEP_DAYS_MAX
from rooms.models import Room
from safechat.admin_base import ReadOnlyAdmin, ServiceTransactionAdmin
from safechat.pagination import KEY_MAX
from safechat.streaming import streamed_body


class _ScopedForm(ServiceForm):
    """A hold's or an export request's form: a matter, a reason, rooms and custodians to
    pick from (people only), and the days covered."""

    matter = forms.CharField(max_length=120, required=False)
    reason = forms.CharField(widget=forms.Textarea, max_length=2000, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rooms, custodians = self.fields["rooms"], self.fields["custodians"]
        assert isinstance(rooms, forms.ModelMultipleChoiceField)  # noqa: S101
        assert isinstance(custodians, forms.ModelMultipleChoiceField)  # noqa: S101
        rooms.queryset = Room.objects.order_by("name", "pk")
        # The one selector of people: never django-guardian's internal anonymous row.
        custodians.queryset = people().order_by("username")
        # Named "First Last (@username, email)", as every admin picker of people names them.
        custodians.label_from_instance = User.admin_label  # type: ignore[assignment,method-assign]

    def scope(self) -> dict[str, Any]:
        """The service's ``matter``, ``reason``, ``rooms``, ``custodians``, ``starts_on``
        and ``ends_on`` arguments, from the cleaned data."""
        data = self.cleaned_data
        return {
            "matter": data.get("matter", ""),
            "reason": data.get("reason", ""),
            "rooms": list(data.get("rooms") or []),
            "custodians": list(data.get("custodians") or []),
            "starts_on": data.get("starts_on"),
            "ends_on": data.get("ends_on"),
        }


class _ServiceAdmin(ServiceTransactionAdmin):
    """Saves go through the form's service call (``ServiceTransactionAdmin``)."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user
        return type(form.__name__, (form,), {"actor": user if isinstance(user, User) else None})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saved by the service in the form's clean: the page shows what it saved.
        obj.__dict__.update(form.result.__dict__)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the service set the relations too

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- policies -------------------------------------------------------------------


class RetentionPolicyForm(ServiceForm):
    # No bounds here: the service refuses (and audits) a number out of range.
    keep_days = forms.IntegerField(
        required=False,
        help_text=(
            "Days content is kept from its last write, from the organisation minimum to "
            f"{KEEP_DAYS_MAX} (a hundred years); empty keeps it forever."
        ),
    )

    class Meta:
        model = RetentionPolicy
        fields = ["room", "keep_days"]

    def perform(self) -> RetentionPolicy:
        assert self.actor is not None  # noqa: S101 - the admin site requires a signed-in user
        room = self.instance.room if self.instance.pk else self.cleaned_data.get("room")
        return retention_policy_set(
            actor=self.actor, room=room, keep_days=self.cleaned_data.get("keep_days")
        )


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(_ServiceAdmin):
    form = RetentionPolicyForm
    list_display = ["scope", "kept", "updated_by", "updated_at"]
    list_select_related = ["room", "updated_by"]
    search_fields = ["room__name"]
    list_filter = [("room", admin.EmptyFieldListFilter)]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["room"] if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(MANAGE_RETENTION))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm(MANAGE_RETENTION))

    actions = ["dry_run", "apply_now"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)
        if not request.user.has_perm(MANAGE_RETENTION):
            return {}
        return actions

    @admin.action(description="Dry run: what retention would purge under the selected policies")
    def dry_run(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - the admin site requires a signed-in user
        for policy in queryset.select_related("room"):
            try:
                report = retention_apply(actor=user, dry_run=True, room_id=policy.room_id)
            except ComplianceRefused as refusal:
                self.message_user(request, str(refusal), messages.ERROR)
                continue
            totals = report.totals()
            scope = "the organisation" if policy.room is None else f"room {policy.room.name}"
            self.message_user(
                request,
                f"Dry run {report.run_id} for {scope}: {totals['messages']} messages, "
                f"{totals['files']} files in {len(report.rooms)} room(s) would be purged and "
                f"{totals['epochs']} epoch key(s) shredded.",
            )
            for room in report.rooms[:20]:
                self.message_user(
                    request,
                    f"room {room.room_id}: {room.messages} messages, {room.files} files, "
                    f"oldest {room.oldest:%Y-%m-%d}, newest {room.newest:%Y-%m-%d}"
                    if room.oldest and room.newest
                    else f"room {room.room_id}: {room.epochs} epoch key(s) to shred",
                )

    @admin.action(description="Apply retention now, under every policy (queued for the worker)")
    def apply_now(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        # A run applies every policy at once (rooms meet in holds and epochs): whichever
        # rows are selected, it is the whole run that is asked for, and the page says so.
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - the admin site requires a signed-in user
        try:
            retention_run_request(actor=user)
        except ComplianceRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(
            request,
            "Retention under every policy is queued, as your request; its run appears under "
            "Retention runs (a run already working makes it stand down).",
        )

    @admin.display(description="applies to", ordering="room__name")
    def scope(self, obj: RetentionPolicy) -> str:
        return "organisation default" if obj.room is None else f"room {obj.room.name}"

    @admin.display(description="kept")
    def kept(self, obj: RetentionPolicy) -> str:
        return "forever" if obj.keep_days is None else f"{obj.keep_days} days"


# --- holds --------------------------------------------------------------------------


class LegalHoldPlaceForm(_ScopedForm):
    # The admin's calendar, as the model's own fields had; the help says how days are read.
    starts_on = forms.DateField(
        required=False,
        widget=AdminDateWidget,
        help_text="First day covered (UTC, inclusive); empty: from the beginning.",
    )
    ends_on = forms.DateField(
        required=False,
        widget=AdminDateWidget,
        help_text=(
            "Last day covered (UTC, inclusive); empty: until the hold is released, what "
            "is written from now on included."
        ),
    )

    class Meta:
        model = LegalHold
        fields = ["matter", "reason", "rooms", "custodians", "starts_on", "ends_on"]

    def perform(self) -> LegalHold:
        assert self.actor is not None  # noqa: S101
        return legal_hold_place(actor=self.actor, **self.scope())


class LegalHoldReleaseForm(ServiceForm):
    release_reason = forms.CharField(
        widget=forms.Textarea, max_length=2000, required=False, label="Reason for release"
    )

    class Meta:
        model = LegalHold
        fields = ["release_reason"]

    def perform(self) -> LegalHold:
        assert self.actor is not None  # noqa: S101
        return legal_hold_release(
            actor=self.actor, hold=self.instance, reason=self.cleaned_data.get("release_reason", "")
        )


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "active"), ("released", "released")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(released_at__isnull=True)
        if self.value() == "released":
            return queryset.filter(released_at__isnull=False)
        return queryset


HOLD_FIELDS = [
    "matter", "reason", "rooms", "custodians", "starts_on", "ends_on",
    "placed_by", "placed_at", "released_by", "released_at",
]  # fmt: skip


@admin.register(LegalHold)
class LegalHoldAdmin(_ServiceAdmin):
    list_display = ["id", "matter", "active", "placed_by", "placed_at", "released_at"]
    list_filter = [ActiveFilter, "placed_at", "released_at"]
    search_fields = ["matter", "reason", "custodians__username", "rooms__name"]
    list_select_related = ["placed_by"]
    filter_horizontal = ["rooms", "custodians"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = LegalHoldPlaceForm if obj is None else LegalHoldReleaseForm
        # The form's own fields; none on a hold only shown (released, or no right to
        # release): Django then lists the form's fields to leave out, and None is no list.
        shown_only = obj is not None and not self.has_change_permission(request, obj)
        kwargs["fields"] = [] if shown_only else None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["matter", "reason", "rooms", "custodians", "starts_on", "ends_on"]
        return [*HOLD_FIELDS, "release_reason"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        if obj.is_active and self.has_change_permission(request, obj):
            return HOLD_FIELDS
        return [*HOLD_FIELDS, "release_reason"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(MANAGE_LEGAL_HOLDS))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A release sent for a hold released meanwhile (a page opened before another
        officer released it) goes to the service, which refuses it and audits the attempt
        (``legal_hold.refused``); the page then says why. Anything else: Django's view."""
        user = request.user
        if (
            request.method == "POST"
            and isinstance(user, User)
            and user.has_perm(MANAGE_LEGAL_HOLDS)
        ):
            hold = self.get_object(request, object_id)
            if hold is not None and not hold.is_active:
                try:
                    legal_hold_release(
                        actor=user, hold=hold, reason=request.POST.get("release_reason", "")
                    )
                except ComplianceRefused as refusal:
                    self.message_user(request, str(refusal), messages.ERROR)
                return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Changing a hold means releasing it; a released hold is only shown.
        allowed = bool(request.user.has_perm(MANAGE_LEGAL_HOLDS))
        return allowed and (obj is None or obj.is_active)

    @admin.display(description="active", boolean=True)
    def active(self, obj: LegalHold) -> bool:
        return obj.is_active


# --- what runs did ---------------------------------------------------------------


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "dry_run", "state", "room_scope", "started_at", "finished_at",
        "messages", "files", "epochs_shredded",
    ]  # fmt: skip
    list_filter = ["dry_run", "state", "started_at"]
    readonly_fields = ["tombstones_check"]

    @admin.display(description="tombstones against the audit log")
    def tombstones_check(self, obj: RetentionRun) -> str:
        """``tombstones_verify``: each batch's tombstones against the digest its
        hash-chained audit event carries (a tombstone forged, removed or moved is named)."""
        if obj.dry_run:
            return "a dry run purges nothing"
        problems = tombstones_verify(run_id=obj.pk)
        if not problems:
            return f"every batch's tombstones match its audit event ({obj.messages} purged)"
        return "; ".join(problems)


@admin.register(MessageTombstone)
class MessageTombstoneAdmin(ReadOnlyAdmin):
    list_display = ["message_id", "room", "seq", "sent_at", "purged_at", "run"]
    list_filter = ["purged_at"]
    search_fields = ["=message_id", "=room__id", "room__name"]
    list_select_related = ["room", "run"]


# --- content review ------------------------------------------------------------------


def _review_cursor(request: HttpRequest) -> tuple[ReviewKind, int, int]:
    """The page asked for (``show``, ``after``, ``limit``); BadRequest for a value that
    is not one (never a 500, never a silent default for a mistyped cursor)."""
    try:
        kind = ReviewKind(request.GET.get("show", ReviewKind.MESSAGES.value))
        after = int(request.GET.get("after", "0"))
        limit = int(request.GET.get("limit", str(REVIEW_PAGE_DEFAULT)))
    except ValueError:
        raise BadRequest("show, after or limit is not valid") from None
    if not (0 <= after <= KEY_MAX and 1 <= limit <= REVIEW_PAGE_MAX):
        raise BadRequest("after or limit is out of range")
    return kind, after, limit


class _ReviewAdmin(ReadOnlyAdmin):
    """A list to pick from, and each row's page is its content review (one audited
    ``compliance.content.viewed`` event per page shown). Only ``compliance.review_content``
    opens it; anyone else is answered 403 by the admin, with nothing read or recorded as
    shown."""

    review_template = "admin/compliance/review.html"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.has_perm(REVIEW_CONTENT))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def review(
        self, request: HttpRequest, obj: Any, kind: ReviewKind, after: int, limit: int
    ) -> ReviewPage:
        raise NotImplementedError

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        kind, after, limit = _review_cursor(request)
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("no such row")
        page = self.review(request, obj, kind, after, limit)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Content review: {obj}",
            "subject": obj,
            "page": page,
            "kind": kind.value,
            "limit": limit,
            "kinds": [k.value for k in ReviewKind],
        }
        response = TemplateResponse(request, self.review_template, context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(RoomReview)
class RoomReviewAdmin(_ReviewAdmin):
    list_display = ["name", "kind", "created_at", "archived_at"]
    search_fields = ["name"]
    list_filter = ["kind"]

    def review(
        self, request: HttpRequest, obj: Any, kind: ReviewKind, after: int, limit: int
    ) -> ReviewPage:
        officer = request.user
        assert isinstance(officer, User)  # noqa: S101 - the admin site requires a signed-in user
        return content_review_room(officer=officer, room=obj, kind=kind, after=after, limit=limit)


@admin.register(CustodianReview)
class CustodianReviewAdmin(_ReviewAdmin):
    list_display = ["username", "first_name", "last_name", "is_active"]
    search_fields = ["username", "first_name", "last_name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return CustodianReview.objects.filter(pk__in=people().values("pk"))

    def review(
        self, request: HttpRequest, obj: Any, kind: ReviewKind, after: int, limit: int
    ) -> ReviewPage:
        officer = request.user
        assert isinstance(officer, User)  # noqa: S101 - the admin site requires a signed-in user
        return content_review_custodian(
            officer=officer, custodian=obj, kind=kind, after=after, limit=limit
        )


# --- eDiscovery export requests -----------------------------------------------------


class ExportRequestForm(_ScopedForm):
    starts_on = forms.DateField(required=False, help_text="First day covered (UTC).")
    ends_on = forms.DateField(required=False, help_text="Last day covered (UTC), not after today.")
    recipient_public_key = forms.CharField(
        widget=forms.Textarea,
        required=False,
        help_text="Optional: the public key to encrypt the archive to (base64); empty: your own.",
    )
    max_downloads = forms.IntegerField(required=False, min_value=1, max_value=20)

    class Meta:
        model = ExportRequest
        fields = [
            "matter", "reason", "rooms", "custodians", "starts_on", "ends_on",
            "recipient_public_key", "max_downloads",
        ]  # fmt: skip

    def perform(self) -> ExportRequest:
        assert self.actor is not None  # noqa: S101
        data = self.cleaned_data
        return export_request(
            actor=self.actor,
            **self.scope(),
            recipient_public_key=data.get("recipient_public_key", ""),
            max_downloads=data.get("max_downloads"),
        )


class ExportDecisionForm(ServiceForm):
    """Approve (naming the scope digest shown with the page) or refuse (with a reason)."""

    decision = forms.ChoiceField(choices=[("approve", "approve"), ("refuse", "refuse")])
    # The digest of the scope this page showed: the approval names what was reviewed.
    reviewed_digest = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    decision_note = forms.CharField(
        widget=forms.Textarea, max_length=2000, required=False, label="Reason (to refuse)"
    )

    class Meta:
        model = ExportRequest
        fields = ["decision_note"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["reviewed_digest"].initial = export_scope_digest(self.instance)

    def perform(self) -> ExportRequest:
        assert self.actor is not None  # noqa: S101
        data = self.cleaned_data
        if data.get("decision") == "approve":
            return export_approve(
                actor=self.actor, export=self.instance, scope_digest=data.get("reviewed_digest", "")
            )
        return export_refuse(
            actor=self.actor, export=self.instance, reason=data.get("decision_note", "")
        )


EXPORT_FIELDS = [
    "matter", "reason", "rooms", "custodians", "starts_on", "ends_on", "recipient_public_key",
    "max_downloads", "scope_digest", "state", "requested_by", "requested_at", "decided_by",
    "decided_at", "decision_note", "started_at", "finished_at", "expires_at", "downloads",
]  # fmt: skip


@admin.register(ExportRequest)
class ExportRequestAdmin(_ServiceAdmin):
    list_display = ["id", "matter", "state", "requested_by", "requested_at", "decided_by"]
    list_filter = ["state", "requested_at"]
    search_fields = ["matter", "custodians__username", "rooms__name"]
    list_select_related = ["requested_by", "decided_by"]
    filter_horizontal = ["rooms", "custodians"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = ExportRequestForm if obj is None else ExportDecisionForm
        kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ExportRequestForm.Meta.fields
        if self.has_change_permission(request, obj):
            return [*EXPORT_FIELDS, "decision", "reviewed_digest", "decision_note"]
        return EXPORT_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        if self.has_change_permission(request, obj):
            return [f for f in EXPORT_FIELDS if f != "decision_note"]
        return EXPORT_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(REQUEST_EXPORT))

    actions = ["download"]

    @admin.action(description="Download the selected export's archive (yours, counted)")
    def download(
        self, request: HttpRequest, queryset: QuerySet[ExportRequest]
    ) -> StreamingHttpResponse | None:
        # A POST (an admin action), never a link: each download is counted and audited.
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - the admin site requires a signed-in user
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one export to download.", messages.ERROR)
            return None
        try:
            served = export_download(actor=user, export=chosen[0])
        except ComplianceRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return None
        response = StreamingHttpResponse(
            streamed_body(request, served.pieces), content_type=served.content_type
        )
        response["Content-Disposition"] = f'attachment; filename="{served.filename}"'
        response["Cache-Control"] = "no-store"
        return response

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Changing a request means deciding it; a decided one is only shown.
        allowed = bool(request.user.has_perm(APPROVE_EXPORT))
        return allowed and (obj is None or obj.state == ExportRequest.State.REQUESTED)


# Supervision review's pages, in a module of their own.
from compliance import admin_supervision  # noqa: E402, F401
