"""Log lines as JSON, one object per line, alike from the web server, the Celery worker
and beat (settings.LOGGING; ``safechat.celery`` hands the worker's and beat's logging to
it).

Every line has the same fields, and only these: ``time`` (ISO 8601, UTC), ``level``,
``logger``, ``message``, ``service`` (``web``, ``worker``, ``beat``: the process's
``SAFECHAT_SERVICE``, set by the runner, the systemd units and the compose file),
``request_id`` (the HTTP request's or socket frame's, carried into the Celery tasks it
queued; ``-`` outside any), in a task also ``task`` and ``task_id``, and on an error
``exc_info``. Whatever else a library attaches to a record (Django's request object,
uvicorn's coloured copy of the message) is dropped: it may carry paths with one-time
secrets, which ``safechat.logredact`` removes from the message and its arguments only.
Imports nothing of the project.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import current_task
from pythonjsonlogger.json import JsonFormatter

FIELDS = (
    "time",
    "level",
    "logger",
    "message",
    "service",
    "request_id",
    "task",
    "task_id",
    "exc_info",
    "stack_info",
)


def service_name() -> str:
    """The process's role in the product, from ``SAFECHAT_SERVICE`` (``-`` if unset)."""
    return os.environ.get("SAFECHAT_SERVICE", "") or "-"


class TaskFieldsFilter(logging.Filter):
    """Adds the Celery task being run (its name and id), if any, to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = current_task
        if task:  # a proxy: false outside a task
            record.task = task.name
            record.task_id = task.request.id
        return True


class ClientRefusalFilter(logging.Filter):
    """For a logger of requests refused for the client's fault (a ``Host`` not in
    ``ALLOWED_HOSTS``, Django's ``django.security.DisallowedHost``): each record becomes
    a WARNING without a traceback (nothing of ours failed), and the same message is
    written at most once per ``window`` seconds per process (a scanner sending a thousand
    bad hosts writes one line each, not a thousand stack traces)."""

    def __init__(self, window: float = 60.0) -> None:
        super().__init__()
        self.window = window
        self.last_written: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        message = record.getMessage()[:200]
        now = record.created
        if now - self.last_written.get(message, float("-inf")) < self.window:
            return False
        if len(self.last_written) > 1000:  # bounded: forget the oldest half
            for key in sorted(self.last_written, key=self.last_written.__getitem__)[:500]:
                del self.last_written[key]
        self.last_written[message] = now
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record with exactly :data:`FIELDS` (those present)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            "{levelname}{name}{message}{request_id}{task}{task_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service_name()},
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            field: log_data[field]
            for field in FIELDS
            if log_data.get(field) is not None and log_data.get(field) != ""
        }
