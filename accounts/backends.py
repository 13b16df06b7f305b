"""Permissions come from roles, and from nothing else.

Django's ``ModelBackend`` also honours a superuser flag (every permission), permissions
given to one account directly (``user_permissions``) and permissions of any group. Each
is a power outside the role services, never audited where it was given, and able to
join duties SafeChat keeps apart (administering people and reading the audit log). So:
superusers cannot exist (a check constraint on ``accounts_user``), and this backend gives
an account exactly the permissions the code gives its roles (``ROLE_PERMISSIONS``), read
from nothing in the database but the account's role groups.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from accounts.roles import ROLE_PERMISSIONS, Role

ROLE_GROUP_NAMES = frozenset(role.value for role in Role)


class RoleBackend(ModelBackend):
    """``ModelBackend`` (passwords, active accounts) whose permissions are those the code
    gives the account's roles (``accounts.roles.ROLE_PERMISSIONS``): no superuser
    shortcut, no per-account grant, no non-role group, and not even the role groups'
    permission rows in the database, which a ``loaddata`` or a shell could change."""

    def _get_permissions(self, user_obj: Any, obj: Any, from_name: str) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if from_name != "group":
            return set()
        cache_name = "_group_perm_cache"
        if not hasattr(user_obj, cache_name):
            held = user_obj.groups.filter(name__in=ROLE_GROUP_NAMES).values_list("name", flat=True)
            setattr(
                user_obj,
                cache_name,
                {name for role in held for name in ROLE_PERMISSIONS[Role(role)]},
            )
        cached: set[str] = getattr(user_obj, cache_name)
        return cached

    def with_perm(
        self,
        perm: Any,
        is_active: bool = True,
        include_superusers: bool = True,
        obj: Any = None,
    ) -> Any:
        """The people holding ``perm`` ("app_label.codename") through a role."""
        from django.contrib.auth import get_user_model

        name = perm if isinstance(perm, str) else f"{perm.content_type.app_label}.{perm.codename}"
        roles = [role.value for role, names in ROLE_PERMISSIONS.items() if name in names]
        users = get_user_model()._default_manager.filter(groups__name__in=roles)
        return (users.filter(is_active=True) if is_active else users).distinct()
