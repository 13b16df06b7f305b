from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Encrypted file vault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from files.selectors import attachments_for_messages
        from rooms.attachments import attachment_opener_register

        # The rooms' message selectors open a message's file through this (the layers
        # forbid rooms to import files).
        attachment_opener_register(attachments_for_messages)
