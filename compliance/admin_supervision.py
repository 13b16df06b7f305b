"""Supervision review in the admin, for compliance officers (``compliance.supervise``).

Lexicons and their terms, sampling rates, matching runs, and the review queue. Every
change goes through ``compliance.services.supervision``: a form calls the service when
it is checked, so a refusal (audited by the service) is shown on the form with nothing
changed. Opening a queue item reads its message through the compliance key
(``compliance.selectors.supervision``: one ``supervision.item.viewed`` event); its page
is ``no-store``. Imported by ``compliance.admin``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.selectors import people
from compliance.admin_forms import ServiceForm
from compliance.models import (
    SupervisionItem,
    SupervisionLexicon,
    SupervisionRun,
    SupervisionSampling,
    SupervisionTerm,
)
from compliance.selectors.dashboard import compliance_dashboard
from compliance.selectors.supervision import (
    NOTE_SHREDDED,
    supervision_epoch_shredded,
    supervision_item_open,
    supervision_queue,
)
from compliance.services import ComplianceRefused
from compliance.services.supervision import (
    SUPERVISE,
    supervision_item_close,
    supervision_item_escalate,
    supervision_lexicon_create,
    supervision_lexicon_set_active,
    supervision_run_request,
    supervision_sampling_set,
    supervision_term_add,
    supervision_term_remove,
)
from rooms.models import Room
from safechat.admin_base import ReadOnlyAdmin, ServiceTransactionAdmin


def _officer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - the admin site requires a signed-in user
    return user


def _supervises(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.has_perm(SUPERVISE))


class _SupervisionAdmin(ServiceTransactionAdmin):
    """Only ``compliance.supervise`` sees or changes anything; saves are the service's."""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user
        return type(form.__name__, (form,), {"actor": user if isinstance(user, User) else None})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.__dict__.update(form.result.__dict__)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _supervises(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _supervises(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _supervises(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _supervises(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- lexicons and terms ---------------------------------------------------------------


class LexiconCreateForm(ServiceForm):
    name = forms.CharField(max_length=120, required=False)
    description = forms.CharField(widget=forms.Textarea, max_length=2000, required=False)

    class Meta:
        model = SupervisionLexicon
        fields = ["name", "description"]

    def perform(self) -> SupervisionLexicon:
        assert self.actor is not None  # noqa: S101
        return supervision_lexicon_create(
            actor=self.actor,
            name=self.cleaned_data.get("name", ""),
            description=self.cleaned_data.get("description", ""),
        )


class TermAddForm(ServiceForm):
    """A lexicon's page adds one term at a time (a phrase, or an RE2 pattern)."""

    kind = forms.ChoiceField(choices=SupervisionTerm.Kind.choices, label="New term: kind")
    value = forms.CharField(
        max_length=200,
        required=False,
        label="New term",
        help_text="A phrase (any case, any spacing), or an RE2 pattern: no back-references "
        "or look-arounds; it may not match the empty text.",
    )
    checksum = forms.ChoiceField(
        choices=SupervisionTerm.Check.choices, required=False, label="Matches must pass"
    )

    class Meta:
        model = SupervisionLexicon
        fields: list[str] = []

    def perform(self) -> SupervisionLexicon:
        assert self.actor is not None  # noqa: S101
        data = self.cleaned_data
        lexicon: SupervisionLexicon = self.instance
        if (data.get("value") or "").strip():
            supervision_term_add(
                actor=self.actor,
                lexicon=lexicon,
                kind=data.get("kind", ""),
                value=data.get("value", ""),
                checksum=data.get("checksum") or "",
            )
        return lexicon


@admin.register(SupervisionLexicon)
class SupervisionLexiconAdmin(_SupervisionAdmin):
    list_display = ["name", "active", "term_count", "created_by", "created_at"]
    list_filter = ["active"]
    search_fields = ["name", "terms__value"]
    actions = ["switch_on", "switch_off"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = LexiconCreateForm if obj is None else TermAddForm
        kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "description"]
        return ["name", "description", "active", "term_list", "kind", "value", "checksum"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["name", "description", "active", "term_list"]

    @admin.display(description="terms")
    def term_list(self, obj: SupervisionLexicon) -> str:
        rows = obj.terms.order_by("pk")
        return format_html(
            '<ul class="supervision-terms">{}</ul>',
            format_html_join(
                "",
                "<li><code>{}</code> ({}{}){}</li>",
                (
                    (
                        t.value,
                        t.get_kind_display(),
                        f", {t.get_checksum_display()}" if t.checksum else "",
                        "" if t.active else " — switched off",
                    )
                    for t in rows
                ),
            ),
        )

    @admin.display(description="terms (active)")
    def term_count(self, obj: SupervisionLexicon) -> int:
        return obj.terms.filter(active=True).count()

    def _switch(self, request: HttpRequest, queryset: QuerySet[Any], active: bool) -> None:
        for lexicon in queryset:
            try:
                supervision_lexicon_set_active(
                    actor=_officer(request), lexicon=lexicon, active=active
                )
            except ComplianceRefused as refusal:
                self.message_user(request, str(refusal), messages.ERROR)
                return
        self.message_user(
            request, f"{queryset.count()} lexicon(s) switched {'on' if active else 'off'}."
        )

    @admin.action(description="Switch the selected lexicons on")
    def switch_on(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._switch(request, queryset, True)

    @admin.action(description="Switch the selected lexicons off")
    def switch_off(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._switch(request, queryset, False)


@admin.register(SupervisionTerm)
class SupervisionTermAdmin(ReadOnlyAdmin):
    list_display = ["value", "kind", "checksum", "lexicon", "active", "created_by", "created_at"]
    list_filter = ["active", "kind", "lexicon"]
    search_fields = ["value"]
    list_select_related = ["lexicon", "created_by"]
    actions = ["switch_off"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _supervises(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _supervises(request)

    @admin.action(description="Switch the selected terms off")
    def switch_off(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for term in queryset:
            try:
                supervision_term_remove(actor=_officer(request), term=term)
            except ComplianceRefused as refusal:
                self.message_user(request, str(refusal), messages.ERROR)
                return
        self.message_user(request, f"{queryset.count()} term(s) switched off.")


# --- sampling ------------------------------------------------------------------------


class SamplingForm(ServiceForm):
    rate = forms.IntegerField(
        required=False,
        help_text="Basis points of unflagged messages sampled: 100 is 1%, 10000 every one.",
    )

    class Meta:
        model = SupervisionSampling
        fields = ["room", "custodian", "rate"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "room" in self.fields:
            room = self.fields["room"]
            custodian = self.fields["custodian"]
            assert isinstance(room, forms.ModelChoiceField)  # noqa: S101
            assert isinstance(custodian, forms.ModelChoiceField)  # noqa: S101
            room.queryset = Room.objects.order_by("name", "pk")
            custodian.queryset = people().order_by("username")

    def perform(self) -> SupervisionSampling:
        assert self.actor is not None  # noqa: S101
        data = self.cleaned_data
        rate = data.get("rate")
        return supervision_sampling_set(
            actor=self.actor,
            rate=-1 if rate is None else rate,
            room=data.get("room", self.instance.room if self.instance.pk else None),
            custodian=data.get("custodian", self.instance.custodian if self.instance.pk else None),
        )


@admin.register(SupervisionSampling)
class SupervisionSamplingAdmin(_SupervisionAdmin):
    form = SamplingForm
    list_display = ["__str__", "room", "custodian", "rate", "updated_by", "updated_at"]
    list_select_related = ["room", "custodian", "updated_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["room", "custodian"] if obj is not None else []


# --- runs --------------------------------------------------------------------------


@admin.register(SupervisionRun)
class SupervisionRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "state", "requested_by", "started_at", "finished_at", "terms", "scanned",
        "flagged", "sampled", "unreadable",
    ]  # fmt: skip
    list_filter = ["state"]
    change_list_template = "admin/compliance/supervisionrun/change_list.html"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _supervises(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _supervises(request)

    def get_urls(self) -> list[URLPattern]:
        run_now = self.admin_site.admin_view(require_POST(self.run_now_view))
        own = [path("run-now/", run_now, name="compliance_supervisionrun_run_now")]
        return own + super().get_urls()

    def run_now_view(self, request: HttpRequest) -> HttpResponse:
        if not _supervises(request):
            raise PermissionDenied
        try:
            supervision_run_request(actor=_officer(request))
        except ComplianceRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
        else:
            self.message_user(
                request,
                "A matching run is queued, as your request; it appears here when it starts "
                "(a run already working makes it stand down).",
            )
        return HttpResponseRedirect(reverse("admin:compliance_supervisionrun_changelist"))


# --- the review queue ----------------------------------------------------------------


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("escalate", "escalate"), ("close", "close")])
    note = forms.CharField(
        widget=forms.Textarea, max_length=2000, required=False, label="Note (required)"
    )


@admin.register(SupervisionItem)
class SupervisionItemAdmin(ReadOnlyAdmin):
    """The queue: items of other people's messages, pending first; each row's page opens
    the message (audited) and decides it (escalate with a note, close with a reason)."""

    list_display = [
        "id", "state", "reason", "lexicon_names", "hit_count", "room", "sender", "sent_at",
    ]  # fmt: skip
    list_filter = ["state", "reason", "lexicons"]
    list_select_related = ["room", "sender"]
    search_fields = ["room__name", "sender__username"]
    item_template = "admin/compliance/supervision_item.html"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _supervises(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _supervises(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SupervisionItem]:
        states = tuple(SupervisionItem.State.values)
        return supervision_queue(officer=_officer(request), states=states).prefetch_related(
            "lexicons"
        )

    @admin.display(description="lexicons")
    def lexicon_names(self, obj: SupervisionItem) -> str:
        return ", ".join(lexicon.name for lexicon in obj.lexicons.all())

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if not _supervises(request):
            raise PermissionDenied
        officer = _officer(request)
        try:
            item = SupervisionItem.objects.select_related("room", "sender").get(pk=int(object_id))
        except (ValueError, SupervisionItem.DoesNotExist):
            raise Http404("no such item") from None
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if request.method == "POST":
            if form.is_valid():
                note = form.cleaned_data.get("note", "")
                try:
                    if form.cleaned_data["decision"] == "escalate":
                        supervision_item_escalate(actor=officer, item=item, note=note)
                    else:
                        supervision_item_close(actor=officer, item=item, reason=note)
                except ComplianceRefused as refusal:
                    self.message_user(request, str(refusal), messages.ERROR)
                else:
                    self.message_user(request, f"Item {item.pk}: {form.cleaned_data['decision']}d.")
                    if supervision_epoch_shredded(item=item):
                        self.message_user(request, f"Your note: {NOTE_SHREDDED}.", messages.WARNING)
                    return HttpResponseRedirect(
                        reverse("admin:compliance_supervisionitem_changelist")
                    )
            return HttpResponseRedirect(request.path)
        if request.method != "GET":
            raise PermissionDenied
        try:
            opened = supervision_item_open(officer=officer, item=item)
        except ComplianceRefused as refusal:
            raise PermissionDenied(str(refusal)) from None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Supervision review: item {item.pk}",
            "opened": opened,
            "marked": _marked(opened.text, [(h.start, h.end) for h in opened.hits]),
            "form": form,
            "decidable": item.state != SupervisionItem.State.CLOSED,
        }
        response = TemplateResponse(request, self.item_template, context)
        response["Cache-Control"] = "no-store"
        return response


def _marked(text: str | None, spans: list[tuple[int, int]]) -> str:
    """``text`` escaped, with each hit's span in ``<mark>`` (overlaps merged)."""
    if text is None:
        return ""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[tuple[str, str]] = []
    cursor = 0
    for start, end in merged:
        pieces.append(("{}", text[cursor:start]))
        pieces.append(("<mark>{}</mark>", text[start:end]))
        cursor = end
    pieces.append(("{}", text[cursor:]))
    return format_html_join("", "{}", ((format_html(fmt, part),) for fmt, part in pieces))


# --- the dashboard -------------------------------------------------------------------


def compliance_dashboard_view(request: HttpRequest) -> HttpResponse:
    """The compliance officer's dashboard (``compliance.selectors.dashboard``): figures and
    charts of the last 30 days, drawn by Chart.js from a JSON block (no inline script),
    each chart's numbers also as a table. 403 for anyone but a compliance officer."""
    if request.method != "GET":
        raise PermissionDenied
    dashboard = compliance_dashboard(officer=_officer(request))
    context = {
        **admin.site.each_context(request),
        "title": "Compliance dashboard",
        "dashboard": dashboard,
        "charts": [chart.as_json() for chart in dashboard.charts],
    }
    response = TemplateResponse(request, "admin/compliance/dashboard.html", context)
    response["Cache-Control"] = "no-store"
    return response
