"""What every SafeChat admin page shares."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect

# The two roles the admin is for (accounts.roles; named here, as this module sits below
# the apps): security admins administer people and rooms, compliance officers read the
# audit log and look up what it names. Neither changes anything except through a service.
ADMINISTER = "accounts.manage_users"
INVESTIGATE = "audit.view_auditevent"


def may_investigate(user: Any) -> bool:
    """Whether ``user`` may look at people, rooms and memberships in the admin."""
    return bool(
        user.is_active
        and user.is_staff
        and (user.has_perm(ADMINISTER) or user.has_perm(INVESTIGATE))
    )


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The admin only shows: every change goes through a service (which writes the audit
    event), from the portal or an admin action. Without delete permission Django also
    hides the bulk-delete action.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceTransactionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """An admin whose saves call an action: the action opens the outermost transaction
    (``safechat.actions``), so the change form does not wrap the request in one."""

    @method_decorator(csrf_protect)
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response: HttpResponse = getattr(self, "_changeform_view")(  # noqa: B009 (Django's own)
            request, object_id, form_url, extra_context
        )
        return response
