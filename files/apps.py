from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Encrypted file vault"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from files.selectors import attachments_for_messages, scan_waiting_for_room
        from rooms.attachments import attachment_opener_register, scan_waiting_register

        # The rooms' message selectors open a message's file through this, and the chat
        # page asks whether a room's files wait for the scanner (the layers forbid rooms
        # to import files).
        attachment_opener_register(attachments_for_messages)
        scan_waiting_register(scan_waiting_for_room)
