from django.apps import AppConfig


class KeyringConfig(AppConfig):
    """Key management on top of ``safechat.crypto``: user, compliance and room keys."""

    name = "safechat.keyring"
    label = "keyring"
    verbose_name = "Key management"
    default_auto_field = "django.db.models.BigAutoField"
