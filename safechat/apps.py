"""The project's own app config: it loads the Celery app when Django starts, and keeps an
SQLite database's write-ahead log open for the process (safechat/sqlite_wal.py)."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created

# Loaded with Django, so every ``@shared_task`` binds to the SafeChat app (its broker and
# settings) in the web process, the worker and the tests alike.
from safechat.celery import app as celery_app
from safechat.logredact import path_loggers_redact
from safechat.sqlite_wal import on_connection_created

__all__ = ["SafeChatConfig", "celery_app"]


class SafeChatConfig(AppConfig):
    """The project package as a Django app: no models, only process-wide start-up."""

    name = "safechat"
    verbose_name = "SafeChat"

    def ready(self) -> None:
        # The server's own access log names paths, one-time link secrets included.
        path_loggers_redact()
        # Infrastructure, not business logic: on SQLite (the embedded default) one idle
        # connection keeps the write-ahead log, so each request's own connection does not
        # checkpoint and delete it when it closes (safechat/sqlite_wal.py).
        connection_created.connect(on_connection_created, dispatch_uid="safechat.sqlite_wal")
