"""The Celery application: worker and beat share Django's settings (``CELERY_*``).

Convention for every task: take ids, never content or keys; look the record up,
call a service, and be safe to run twice (tasks are acknowledged late).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")

app = Celery("safechat")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
