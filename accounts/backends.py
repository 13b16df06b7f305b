"""Permissions come from roles, and from nothing else.

Django's ``ModelBackend`` also honours a superuser flag (every permission), permissions
given to one account directly (``user_permissions``) and permissions of any group. Each
is a power outside the role services, never audited where it was given, and able to
join duties SafeChat keeps apart (administering people and reading the audit log). So:
superusers cannot exist (a check constraint on ``accounts_user``), and this backend reads
only the permissions of role groups (``accounts.roles.Role``), which ``roles_sync`` keeps
exactly as the code defines them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from accounts.roles import Role

ROLE_GROUP_NAMES = frozenset(role.value for role in Role)


class RoleBackend(ModelBackend):
    """``ModelBackend`` (passwords, active accounts) whose permissions are the account's
    roles' permissions: no superuser shortcut, no per-account or non-role group grant."""

    def _get_user_permissions(self, user_obj: Any) -> Any:
        return Permission.objects.none()

    def _get_group_permissions(self, user_obj: Any) -> Any:
        return Permission.objects.filter(
            group__user=user_obj, group__name__in=ROLE_GROUP_NAMES
        ).distinct()

    def _get_permissions(self, user_obj: Any, obj: Any, from_name: str) -> set[str]:
        # ModelBackend's, without its "a superuser holds every permission" branch.
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        cache_name = f"_{from_name}_perm_cache"
        if not hasattr(user_obj, cache_name):
            perms = getattr(self, f"_get_{from_name}_permissions")(user_obj)
            names = perms.values_list("content_type__app_label", "codename").order_by()
            setattr(user_obj, cache_name, {f"{ct}.{name}" for ct, name in names})
        cached: set[str] = getattr(user_obj, cache_name)
        return cached
