"""Rooms and memberships for security admins. No message content is ever shown here.

Every change goes through ``rooms.services`` (keys and permissions move with
membership), so the admin offers actions, not edit forms.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import User
from accounts.roles import MANAGE_USERS, Role
from accounts.selectors import people_active
from rooms.errors import RateLimitedError
from rooms.holds import room_legal_hold
from rooms.models import InformationBarrier, Membership, Room
from rooms.services import (
    barrier_create,
    barrier_delete,
    group_create,
    membership_remove,
    room_archive,
)
from rooms.services.barriers import (
    BarrierConflict,
    group_members_set,
    lifts_own_wall,
    room_barrier_violations,
)
from safechat.admin_actions import each_row
from safechat.admin_base import ReadOnlyAdmin, ServiceTransactionAdmin, may_investigate


def _user_link(user: User) -> str:
    url = reverse("admin:accounts_user_change", args=[user.pk])
    return format_html('<a href="{}">{}</a>', url, user.username)


def _room_link(room: Room) -> str:
    url = reverse("admin:rooms_room_change", args=[room.pk])
    return format_html('<a href="{}">{}</a>', url, room.name or f"direct conversation {room.pk}")


class _InvestigatorView:
    """Security admins and compliance officers see rooms and memberships (no content);
    only holders of ``accounts.manage_users`` are offered the actions, whose services
    check that permission again."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_investigate(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_investigate(request.user)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        return actions if request.user.has_perm(MANAGE_USERS) else {}


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    """A room's members on its page, read-only (membership changes go through services)."""

    model = Membership
    fields = ("person", "role", "joined_at")
    readonly_fields = ("person", "role", "joined_at")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user").order_by("user__username")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_investigate(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="member")
    def person(self, obj: Membership) -> str:
        return _user_link(obj.user)


@admin.register(Room)
class RoomAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = [
        "id",
        "name",
        "kind",
        "visibility",
        "under_legal_hold",
        "archived_at",
        "created_at",
    ]
    list_filter = ["kind", "visibility", "history_visible"]
    search_fields = ["name"]
    fields = (
        "name", "kind", "visibility", "topic", "history_visible", "under_legal_hold",
        "archived_at", "created_by", "created_at",
    )  # fmt: skip
    readonly_fields = fields
    inlines = [MembershipInline]
    actions = ["archive_rooms"]

    @admin.display(description="legal hold", boolean=True)
    def under_legal_hold(self, obj: Room) -> bool:
        # Derived from the active holds (compliance), never a field of its own.
        return room_legal_hold(obj.pk)

    @admin.action(description="Archive the selected rooms (read-only from now on)")
    def archive_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - the admin site requires a signed-in user
        each_row(
            self, request, queryset,
            call=lambda room: room_archive(actor=user, room=room),
            label=lambda room: room.name, done="room(s) archived", stops=(RateLimitedError,),
        )  # fmt: skip


@admin.register(Membership)
class MembershipAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = ["room_name", "person", "role", "joined_at"]
    list_filter = [
        "role",
        ("room", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["room__name", "user__username"]
    list_select_related = ["room", "user"]
    actions = ["remove_members"]

    @admin.display(description="room", ordering="room__name")
    def room_name(self, obj: Membership) -> str:
        return _room_link(obj.room)

    @admin.display(description="member", ordering="user__username")
    def person(self, obj: Membership) -> str:
        return _user_link(obj.user)

    @admin.action(description="Remove the selected members (new room key, sockets closed)")
    def remove_members(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        user = request.user
        assert isinstance(user, User)  # noqa: S101
        each_row(
            self, request, queryset.select_related("room", "user"),
            call=lambda m: membership_remove(actor=user, room=m.room, member=m.user),
            label=lambda m: f"{m.user.username} in {m.room.name}", done="member(s) removed",
            refusals=(PermissionDenied, ValidationError), stops=(RateLimitedError,),
        )  # fmt: skip


class InformationBarrierForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = InformationBarrier
        fields = ["group_a", "group_b", "reason"]
        # The two sides of the wall, by what they are (the columns' names say nothing).
        labels = {"group_a": "One side (a group)", "group_b": "The other side (a group)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Groups of people only: a role is never a side of a wall (``barrier_create``).
        groups = Group.objects.exclude(name__in=[role.value for role in Role]).order_by("name")
        for name in ("group_a", "group_b"):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
            field.queryset = groups

    def clean(self) -> dict[str, Any]:
        # A barrier is an unordered pair, stored lowest id first (a database constraint):
        # put the two groups in that order before the model's checks run.
        cleaned = super().clean() or {}
        a, b = cleaned.get("group_a"), cleaned.get("group_b")
        if a is not None and b is not None and a.pk > b.pk:
            cleaned["group_a"], cleaned["group_b"] = b, a
        return cleaned


@admin.register(InformationBarrier)
class InformationBarrierAdmin(ServiceTransactionAdmin):
    form = InformationBarrierForm
    list_display = ["id", "one_side", "other_side", "reason", "created_by", "created_at"]
    list_select_related = ["group_a", "group_b", "created_by"]
    fields = ["group_a", "group_b", "reason"]
    actions = ["delete_barriers"]

    @admin.display(description="one side", ordering="group_a__name")
    def one_side(self, obj: InformationBarrier) -> str:
        return obj.group_a.name

    @admin.display(description="the other side", ordering="group_b__name")
    def other_side(self, obj: InformationBarrier) -> str:
        return obj.group_b.name

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through the audited service
        return actions

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(MANAGE_USERS))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: InformationBarrier, form: Any, change: bool
    ) -> None:
        user = request.user
        assert isinstance(user, User)  # noqa: S101
        try:
            barrier, violations = barrier_create(
                actor=user, group_a=obj.group_a, group_b=obj.group_b, reason=obj.reason
            )
        except ValidationError:
            # Created by someone else at the same instant (the form checked before): the
            # barrier that won stands, and the page says so.
            won = InformationBarrier.objects.filter(
                group_a=obj.group_a, group_b=obj.group_b
            ).first()
            if won is None:
                raise
            obj.pk = won.pk
            self.message_user(
                request,
                "This barrier was created at the same instant by someone else; it stands.",
                messages.WARNING,
            )
            return
        obj.pk = barrier.pk
        _violations_warning(self, request, violations)

    @admin.action(description="Lift the selected barriers")
    def delete_barriers(self, request: HttpRequest, queryset: QuerySet[InformationBarrier]) -> None:
        user = request.user
        assert isinstance(user, User)  # noqa: S101
        lifted = each_row(
            self,
            request,
            queryset,
            call=lambda barrier: barrier_delete(actor=user, barrier=barrier),
            label=str,
            done="barrier(s) lifted",
        )
        if lifted:
            violations = room_barrier_violations()
            self.message_user(request, f"{len(violations)} room(s) still in violation")


def _violations_warning(
    admin_view: admin.ModelAdmin[Any],
    request: HttpRequest,
    violations: dict[int, list[BarrierConflict]],
) -> None:
    if violations:
        names = ", ".join(Room.objects.filter(pk__in=violations).values_list("name", flat=True))
        admin_view.message_user(
            request,
            f"{len(violations)} room(s) now violate an information barrier: {names}. "
            "Remove the members concerned under Memberships.",
            messages.WARNING,
        )


class GroupMembersForm(forms.ModelForm):  # type: ignore[type-arg]
    members = forms.ModelMultipleChoiceField(
        queryset=people_active().order_by("username"),
        required=False,
        widget=FilteredSelectMultiple("people", is_stacked=False),
    )
    # The security admin using the page (set by ``GroupAdmin.get_form``).
    actor: User | None = None

    class Meta:
        model = Group
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["members"].initial = list(self.instance.user_set.all())
            if self.instance.name in {role.value for role in Role}:
                # Roles carry permissions and are granted in the portal (audited there).
                self.fields["members"].disabled = True

    def clean_members(self) -> Any:
        # A quick answer on the page; ``group_members_set`` refuses it (audited) anyway.
        members = self.cleaned_data["members"]
        actor = self.actor
        if actor is not None and not self.fields["members"].disabled:
            was_in = (
                self.instance.pk is not None and self.instance.user_set.filter(pk=actor.pk).exists()
            )
            if was_in != any(member.pk == actor.pk for member in members):
                raise ValidationError(
                    "Nobody changes their own groups; ask another security administrator."
                )
            taken_out = self.instance.pk is not None and (
                self.instance.user_set.exclude(pk__in=[m.pk for m in members]).exists()
            )
            if taken_out and lifts_own_wall(actor=actor, groups=[self.instance.pk]):
                raise ValidationError(
                    "Taking people out of this group would lift an information barrier from "
                    "you; ask another security administrator."
                )
        return members


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ServiceTransactionAdmin):
    """Groups that barriers separate. Who is in a group changes through
    ``group_members_set``, which re-checks every room of each person added."""

    form = GroupMembersForm
    list_display = ["name"]
    search_fields = ["name"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(MANAGE_USERS))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Roles are defined in code (``accounts.roles``, kept by ``roles_sync``) and granted
        # through the audited role services: their pages are view-only, for superusers too.
        if obj is not None and obj.name in {role.value for role in Role}:
            return False
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name"] if obj is not None else []

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user
        return type(form.__name__, (form,), {"actor": user if isinstance(user, User) else None})

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        """A new group through ``group_create`` (audited ``group.created``), then its
        members through ``group_members_set`` (each person audited). A group's name is
        not changed here and no group is deleted, so nothing else writes."""
        user = request.user
        assert isinstance(user, User)  # noqa: S101
        if not change:
            created = group_create(actor=user, name=obj.name)
            # The form's instance stands for the created row from here on (the page's
            # redirect and Django's change message name it).
            obj.pk = created.pk
            obj._state.adding, obj._state.db = False, created._state.db
        if form.fields["members"].disabled:
            return
        wanted = {member.pk: member for member in form.cleaned_data["members"]}
        # The page lists active people only: a deactivated member it cannot show stays.
        current = set(obj.user_set.filter(is_active=True).values_list("pk", flat=True))
        # One call, one set of locks taken up front (see ``group_members_set``).
        violations = group_members_set(
            actor=user,
            group=obj,
            add=[wanted[pk] for pk in sorted(wanted.keys() - current)],
            remove=User.objects.filter(pk__in=current - wanted.keys()).order_by("pk"),
        )
        _violations_warning(self, request, violations)
