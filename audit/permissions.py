"""Who may read the audit log: holders of ``audit.view_auditevent`` (compliance officers)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

AUDIT_VIEW_PERMISSION = "audit.view_auditevent"


class CanViewAuditLog(BasePermission):
    """An authenticated, active user holding ``audit.view_auditevent``."""

    message = "Reading the audit log needs the audit.view_auditevent permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_active
            and user.has_perm(AUDIT_VIEW_PERMISSION)
        )
