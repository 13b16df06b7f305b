"""Read-only admin views of accounts; every change goes through the portal's services."""

from __future__ import annotations

from django.contrib import admin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, Invitation, User, UserSession
from safechat.admin_base import ReadOnlyAdmin


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


# django-otp registers its device models with full edit and delete rights. A factor
# removed there would bypass ``accounts.services.factors`` (no audit event, and the
# sessions verified with it left open): show them read-only, without their secrets.
for _device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    fields = ["user", "name", "confirmed", "created_at", "last_used_at"]


@admin.register(StaticDevice)
class StaticDeviceAdmin(ReadOnlyAdmin):
    list_display = ["user", "name", "confirmed"]
    fields = ["user", "name", "confirmed"]
