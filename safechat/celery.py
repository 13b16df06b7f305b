"""The Celery application: worker and beat share Django's settings (``CELERY_*``).

Convention for every task: take ids, never content or keys; look the record up,
call a service, and be safe to run twice (tasks are acknowledged late).
"""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready

from safechat.request_context import CHANNEL_TASK, ActingContext, acting, new_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")


class ActingTask(Task[Any, Any]):
    """Every task runs under the ``task`` channel, its request id the task's id (a new
    one when the task is called directly), so its audit events say where they came from."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task_id = getattr(self.request, "id", None) or new_request_id()
        with acting(ActingContext(channel=CHANNEL_TASK, request_id=str(task_id))):
            return super().__call__(*args, **kwargs)


app = Celery("safechat", task_cls=ActingTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _scanner_said_at_start(**kwargs: Any) -> None:
    """The worker scans files: with no scanner, or one that does not answer, its log says
    so once at start (an operator's notice, not business logic)."""
    from files.scanner import scanner_check_at_start

    scanner_check_at_start()
