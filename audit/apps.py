from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import checks  # noqa: F401 - registers the system checks

        post_migrate.connect(_anchor_file_for_a_new_log, sender=self)


def _anchor_file_for_a_new_log(using: str = "default", **kwargs: Any) -> None:
    """A new, empty log gets its (empty) anchor file: from then on a missing file is a
    verification failure, not a log that was never anchored."""
    from audit.anchors import anchor_file_create
    from audit.models import AuditEvent

    if using == "default" and not AuditEvent.objects.using(using).exists():
        anchor_file_create()
