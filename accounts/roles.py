"""Roles are Django groups with a fixed, documented set of permissions.

Groups are created by a data migration; :func:`roles_sync` is idempotent and
also runs after every ``migrate`` so that permissions of apps migrated later
(the audit log's ``view_auditevent``) are attached as soon as they exist.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Role(StrEnum):
    MEMBER = "member"
    ROOM_ADMIN = "room_admin"
    COMPLIANCE_OFFICER = "compliance_officer"
    SECURITY_ADMIN = "security_admin"

    @property
    def label(self) -> str:
        """What people read for the role (``ROLE_LABELS``); the value is for machines."""
        return ROLE_LABELS[self]


# How each role is named to people, everywhere in the portal (the Users page, invitations,
# one's account page, hints); the identifiers stay in the API, the audit log and the code.
ROLE_LABELS: dict[Role, str] = {
    Role.MEMBER: "Member",
    Role.ROOM_ADMIN: "Room admin",
    Role.COMPLIANCE_OFFICER: "Compliance officer",
    Role.SECURITY_ADMIN: "Security admin",
}


def role_label(name: str) -> str:
    """The label of the role named ``name`` (a stored ``Invitation.role``, a group's name);
    ``name`` itself if it names no role."""
    try:
        return Role(name).label
    except ValueError:
        return name


# (value, label) pairs for a form's choice of role.
ROLE_CHOICES: list[tuple[str, str]] = [(role.value, role.label) for role in Role]


# Security admins' permission to administer people: accounts, roles, barriers, memberships.
MANAGE_USERS = "accounts.manage_users"

# "app_label.codename" per role. Room-level rights live on rooms (guardian);
# compliance officers get no chat write permission anywhere, so they read only.
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.MEMBER: (),
    Role.ROOM_ADMIN: ("accounts.create_room",),
    Role.COMPLIANCE_OFFICER: (
        "audit.view_auditevent",
        "audit.view_auditcheckpoint",
        "compliance.manage_retention",
        "compliance.manage_legal_holds",
        "compliance.review_content",
        "compliance.request_export",
        "compliance.approve_export",
        "compliance.view_exportrequest",
        "compliance.view_retentionpolicy",
        "compliance.view_legalhold",
        "compliance.view_retentionrun",
        "compliance.view_messagetombstone",
        "compliance.supervise",
        "compliance.view_supervisionlexicon",
        "compliance.view_supervisionsampling",
        "compliance.view_supervisionrun",
        "compliance.view_supervisionitem",
    ),
    Role.SECURITY_ADMIN: (
        "accounts.view_user",
        MANAGE_USERS,
        "accounts.manage_factors",
        "accounts.manage_lockouts",
        "accounts.manage_sessions",
        "accounts.manage_tokens",
    ),
}

# Roles whose holders may open the (second-factor protected) Django admin.
STAFF_ROLES = frozenset({Role.COMPLIANCE_OFFICER, Role.SECURITY_ADMIN})


def roles_sync(apps: Any = None, **_: Any) -> None:
    """Create every role group and give it exactly those of its permissions that exist
    yet (nothing else: roles are defined here, never in the admin)."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:
        return
    for role, names in ROLE_PERMISSIONS.items():
        group, _created = group_model.objects.get_or_create(name=role.value)
        granted = []
        for name in names:
            app_label, codename = name.split(".")
            permission = permission_model.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                granted.append(permission)
        # Exactly the code's set: a permission attached by any other means (a shell, an
        # old admin page) is taken away again at the next ``migrate``.
        group.permissions.set(granted)
    # Groups that are not roles (teams that information barriers separate) hold no
    # permission: a power is a role (accounts.backends reads nothing else either).
    role_names = [role.value for role in ROLE_PERMISSIONS]
    for group in (
        group_model.objects.exclude(name__in=role_names)
        .filter(permissions__isnull=False)
        .distinct()
    ):
        group.permissions.clear()
