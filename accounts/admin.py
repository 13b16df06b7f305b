"""Read-only admin views of accounts; every change goes through the portal's services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import ApiToken, Invitation, User, UserSession


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Changes bypassing services would skip the audit log; the admin only shows."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "email", "is_active", "is_staff", "last_login"]
    list_filter = ["is_active", "is_staff", "groups"]
    search_fields = ["username", "email"]
    exclude = ["password"]


@admin.register(UserSession)
class UserSessionAdmin(ReadOnlyAdmin):
    list_display = ["user", "ip_address", "user_agent", "created_at", "last_seen_at", "ended_at"]
    list_filter = ["end_reason"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["user", "name", "prefix", "scope", "expires_at", "last_used_at", "revoked_at"]
    exclude = ["token_hash"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "role", "invited_by", "created_at", "expires_at", "accepted_at"]
    exclude = ["token_hash"]
