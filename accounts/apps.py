from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.api import authentication  # noqa: F401  (registers the OpenAPI scheme)
        from accounts.roles import roles_sync

        # Permissions are created after migrations; attach them to the role groups
        # then too (idempotent), so audit.view_auditevent lands once it exists.
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="accounts.roles_sync")
