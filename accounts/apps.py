from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def roles_sync_after_migrate(*, apps: Any = None, using: str = "default", **_: Any) -> None:
    """After ``migrate``: attach to every role group exactly its permissions.

    ``accounts`` is listed first in ``INSTALLED_APPS`` (its management commands replace
    others'), so its ``post_migrate`` is sent before the permissions of the apps its
    roles name (its own, the audit log's) are created by Django's handler for those
    apps. They are created here first, with Django's own idempotent function.
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    from accounts.roles import ROLE_PERMISSIONS, roles_sync

    labels = sorted({name.split(".")[0] for names in ROLE_PERMISSIONS.values() for name in names})
    for label in labels:
        if label in global_apps.app_configs:
            create_permissions(
                global_apps.get_app_config(label),
                verbosity=0,
                interactive=False,
                using=using,
                apps=apps or global_apps,
            )
    roles_sync(apps=apps)


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.api import authentication  # noqa: F401  (registers the OpenAPI scheme)

        # Permissions are created after migrations; attach them to the role groups
        # then too (idempotent), so audit.view_auditevent lands once it exists.
        post_migrate.connect(
            roles_sync_after_migrate, sender=self, dispatch_uid="accounts.roles_sync"
        )
