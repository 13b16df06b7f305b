"""The project's own app config: it loads the Celery app when Django starts."""

from __future__ import annotations

from django.apps import AppConfig

# Loaded with Django, so every ``@shared_task`` binds to the SafeChat app (its broker and
# settings) in the web process, the worker and the tests alike.
from safechat.celery import app as celery_app
from safechat.logredact import path_loggers_redact

__all__ = ["SafeChatConfig", "celery_app"]


class SafeChatConfig(AppConfig):
    """The project package as a Django app: no models, only process-wide start-up."""

    name = "safechat"
    verbose_name = "SafeChat"

    def ready(self) -> None:
        # The server's own access log names paths, one-time link secrets included.
        path_loggers_redact()
