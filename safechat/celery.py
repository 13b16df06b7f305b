"""The Celery application: worker and beat share Django's settings (``CELERY_*``).

Convention for every task: take ids, never content or keys; look the record up,
call a service, and be safe to run twice (tasks are acknowledged late).
"""

import os
from contextvars import Token
from typing import Any

from celery import Celery, Task
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_ready,
)

from safechat.request_context import (
    CHANNEL_TASK,
    ActingContext,
    acting,
    current_acting,
    current_request_id,
    new_request_id,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")


# The message header carrying the id of the request (or socket frame) that queued a task.
REQUEST_ID_HEADER = "safechat_request_id"


def task_request_id(task: Task[Any, Any]) -> str:
    """The request id a task runs under: the one of the HTTP request or socket frame that
    queued it (the ``safechat_request_id`` header), else its own task id (a task queued
    outside any request, by beat say), else a new one (a task called directly)."""
    # A worker flattens a message's headers into the request; ``apply`` keeps them apart.
    return str(
        task.request.get(REQUEST_ID_HEADER)
        or (task.request.headers or {}).get(REQUEST_ID_HEADER)
        or getattr(task.request, "id", None)
        or new_request_id()
    )


class ActingTask(Task[Any, Any]):
    """Every task runs under the ``task`` channel and :func:`task_request_id`, so its log
    lines and audit events correlate with the request that queued it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with acting(ActingContext(channel=CHANNEL_TASK, request_id=task_request_id(self))):
            return super().__call__(*args, **kwargs)


# Contexts entered before a task runs and left after Celery has logged its outcome, so the
# worker's "succeeded" or "raised" line carries the request id too; by task id, a stack
# (a task run eagerly inside another enters and leaves its own).
_task_contexts: dict[str, list[tuple[Token[ActingContext | None], Token[str]]]] = {}


@task_prerun.connect
def _task_context_enter(
    task_id: str | None = None, task: Task[Any, Any] | None = None, **kwargs: Any
) -> None:
    if task_id is None or task is None:
        return
    context = ActingContext(channel=CHANNEL_TASK, request_id=task_request_id(task))
    tokens = (current_acting.set(context), current_request_id.set(context.request_id))
    _task_contexts.setdefault(task_id, []).append(tokens)


@task_postrun.connect
def _task_context_leave(task_id: str | None = None, **kwargs: Any) -> None:
    stack = _task_contexts.get(task_id or "")
    if not stack:
        return
    acting_token, id_token = stack.pop()
    if not stack:
        del _task_contexts[task_id or ""]
    current_request_id.reset(id_token)
    current_acting.reset(acting_token)


app = Celery("safechat", task_cls=ActingTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _request_id_travels(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """A task queued while a request, frame or task is served carries its request id in
    the message's headers (infrastructure, not business logic)."""
    request_id = current_request_id.get()
    if headers is not None and request_id != "-":
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@setup_logging.connect
def _logging_from_settings(**kwargs: Any) -> None:
    """Worker and beat log as the web server does: Django's ``LOGGING`` (JSON lines,
    safechat/logjson.py), applied by ``django.setup()``; Celery keeps its hands off the
    root logger because this receiver exists. In a process where Django is set up already
    (the web server, the tests), its logging stands as configured."""
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


@worker_ready.connect
def _scanner_said_at_start(**kwargs: Any) -> None:
    """The worker scans files: with no scanner, or one that does not answer, its log says
    so once at start (an operator's notice, not business logic)."""
    from files.scanner import scanner_check_at_start

    scanner_check_at_start()
