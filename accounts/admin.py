"""Admin views of accounts: read-only pages, and actions that call the audited services.

Second-factor devices are not in the admin at all (their secrets, and their removal,
belong to ``accounts.services.factors``); a security admin resets someone's factors from
the users page or the "reset factors" action here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, Invitation, User, UserSession
from accounts.roles import MANAGE_USERS, ROLE_CHOICES, role_label
from accounts.selectors import people
from accounts.services import (
    api_token_revoke,
    factors_reset,
    invitation_revoke,
    password_reset_by_admin,
    session_end_all,
    user_deactivate,
    user_reactivate,
)
from safechat.admin_actions import each_row
from safechat.admin_base import ReadOnlyAdmin, may_investigate

# django-otp registers its device models with add, edit and delete rights, and a page
# that shows a device's ``otpauth://`` secret. A factor added or removed there would
# bypass ``accounts.services.factors`` (no audit event, the sessions verified with it
# left open): they are not registered at all.
# accounts is listed before django-otp (its commands come first), so their admin modules
# are imported here, to register what is then taken away, whatever the autodiscovery order.
import_module("django_otp.plugins.otp_static.admin")
import_module("django_otp.plugins.otp_totp.admin")
for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)


def _user_link(user: User | None) -> str:
    if user is None:
        return "-"
    url = reverse("admin:accounts_user_change", args=[user.pk])
    return format_html('<a href="{}">{}</a>', url, user.username)


class _InvestigatorView:
    """Security admins and compliance officers may look; nobody changes anything here."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_investigate(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_investigate(request.user)


def _each(
    admin_view: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[User],
    verb: str,
    service: Callable[..., object],
) -> None:
    """Call the account service ``service`` for each selected account (``each_row``)."""
    actor = request.user
    assert isinstance(actor, User)  # noqa: S101 - the admin site requires a signed-in user
    each_row(
        admin_view, request, queryset,
        call=lambda user: service(actor=actor, user=user, request=request),
        label=lambda user: user.username, done=f"account(s) {verb}",
    )  # fmt: skip


class GroupListFilter(admin.RelatedFieldListFilter):
    """People by group (roles included). Django's filter ends with a choice for people in
    no group, which it labels with a bare "-": it is named here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = SafeString("group or role")
        self.empty_value_display = SafeString("in no group")

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        # A role's group is stored under the role's value ("room_admin"): shown by its
        # label ("Room administrator"), as everywhere a person reads it.
        return [
            (pk, role_label(str(name)))
            for pk, name in super().field_choices(field, request, model_admin)
        ]


class RoleListFilter(admin.SimpleListFilter):
    """Invitations by the role they give, each named by its label, never its stored value."""

    title = "role"
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ROLE_CHOICES)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(role=value) if value else queryset


@admin.register(User)
class UserAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = [
        "username", "email", "is_active", "is_staff", "last_login", "date_joined", "administer",
    ]  # fmt: skip
    list_filter = ["is_active", "is_staff", ("groups", GroupListFilter)]
    search_fields = ["username", "email"]
    exclude = ["password", "user_permissions"]
    readonly_fields = ["administer", "sessions", "tokens", "memberships"]
    actions = ["deactivate", "reactivate", "reset_factors", "end_sessions", "reset_password"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # People only: django-guardian's internal AnonymousUser row is no account.
        return people()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Offered to administrators only; each service checks its own permission again.
        return super().get_actions(request) if request.user.has_perm(MANAGE_USERS) else {}

    @admin.display(description="roles, password, lockouts")
    def administer(self, obj: User) -> str:
        # Granting or revoking a role, and lifting a lockout, take a choice (which role,
        # which address): the portal's page for this person offers them, each a service.
        url = reverse("accounts:admin-users")
        return format_html(
            '<a href="{}">roles and lockouts of {}</a>',
            url,
            obj.username,
        )

    @admin.display(description="rooms")
    def memberships(self, obj: User) -> str:
        url = reverse("admin:rooms_membership_changelist")
        count = obj.memberships.count()
        return format_html('<a href="{}?user__id__exact={}">{} room(s)</a>', url, obj.pk, count)

    @admin.action(description="Reset password (sessions end; a reset link is emailed)")
    def reset_password(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        _each(self, request, queryset, "sent a reset link", password_reset_by_admin)

    @admin.display(description="sessions")
    def sessions(self, obj: User) -> str:
        url = reverse("admin:accounts_usersession_changelist")
        count = UserSession.objects.filter(user=obj, ended_at__isnull=True).count()
        return format_html('<a href="{}?user__id__exact={}">{} open</a>', url, obj.pk, count)

    @admin.display(description="API tokens")
    def tokens(self, obj: User) -> str:
        url = reverse("admin:accounts_apitoken_changelist")
        count = obj.api_tokens.filter(revoked_at__isnull=True).count()
        return format_html('<a href="{}?user__id__exact={}">{} not revoked</a>', url, obj.pk, count)

    @admin.action(description="Deactivate (sessions end, tokens revoked)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        _each(self, request, queryset, "deactivated", user_deactivate)

    @admin.action(description="Reactivate (they sign in again; old tokens stay revoked)")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        _each(self, request, queryset, "reactivated", user_reactivate)

    @admin.action(description="Reset second factors (they enrol again)")
    def reset_factors(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        _each(self, request, queryset, "reset", factors_reset)

    @admin.action(description="End all sessions")
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        def end(*, actor: User, user: User, request: HttpRequest) -> object:
            return session_end_all(actor=actor, user=user, reason="ended_by_admin", request=request)

        _each(self, request, queryset, "signed out everywhere", end)


@admin.register(UserSession)
class UserSessionAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = [
        "person", "ip_address", "user_agent", "created_at", "last_seen_at", "ended_at",
        "end_reason",
    ]  # fmt: skip
    list_filter = ["end_reason", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=user__username", "=ip_address"]
    list_select_related = ["user"]
    exclude = ["key_hash"]

    @admin.display(description="user", ordering="user__username")
    def person(self, obj: UserSession) -> str:
        return _user_link(obj.user)


@admin.register(ApiToken)
class ApiTokenAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = [
        "person", "name", "prefix", "scope", "expires_at", "last_used_at", "revoked_at",
    ]  # fmt: skip
    list_filter = ["scope", ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=user__username", "=prefix", "name"]
    list_select_related = ["user"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Offered to those who may revoke anyone's token; the service checks it again.
        allowed = request.user.has_perm("accounts.manage_tokens")
        return super().get_actions(request) if allowed else {}

    @admin.display(description="user", ordering="user__username")
    def person(self, obj: ApiToken) -> str:
        return _user_link(obj.user)

    @admin.action(description="Revoke (and every token it minted)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = request.user
        assert isinstance(actor, User)  # noqa: S101 - the admin site requires a signed-in user
        each_row(
            self, request, queryset,
            call=lambda token: api_token_revoke(actor=actor, token=token, request=request),
            label=lambda token: token.prefix, done="token(s) revoked",
        )  # fmt: skip


@admin.register(Invitation)
class InvitationAdmin(_InvestigatorView, ReadOnlyAdmin):
    list_display = [
        "email", "role_shown", "invited_by", "created_at", "expires_at", "accepted_at",
        "revoked_at",
    ]  # fmt: skip
    list_filter = [RoleListFilter]
    search_fields = ["email"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    @admin.display(description="role", ordering="role")
    def role_shown(self, obj: Invitation) -> str:
        return obj.role_label

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Offered to security admins; the service checks it again under a lock.
        allowed = request.user.has_perm(MANAGE_USERS)
        return super().get_actions(request) if allowed else {}

    @admin.action(description="Revoke (the link creates nothing from now on)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        actor = request.user
        assert isinstance(actor, User)  # noqa: S101 - the admin site requires a signed-in user
        each_row(
            self, request, queryset,
            call=lambda row: invitation_revoke(actor=actor, invitation=row, request=request),
            label=lambda row: row.email, done="invitation(s) revoked or already closed",
        )  # fmt: skip
