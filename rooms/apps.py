from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.hooks import room_hooks_register
        from rooms.account_hooks import ROOM_HOOKS

        # The account services ask the rooms' rules through this registry (accounts
        # never imports rooms): barriers on a role change, an owner kept on a
        # deactivation or a grant of a role read-only on chat.
        room_hooks_register(ROOM_HOOKS)
