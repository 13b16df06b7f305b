"""The retention job, on Celery beat: takes nothing, calls the service, safe to run twice
(a second run at the same time is refused; a later one completes what an earlier left)."""

from __future__ import annotations

import logging

from celery import shared_task

from compliance.services import RetentionBusyError, retention_apply

logger = logging.getLogger(__name__)


@shared_task(name="compliance.apply_retention")
def apply_retention_task() -> int:
    """Purge what has expired and is not held; returns the retention run's id (0 if
    another run is working: this one was refused, and audited)."""
    try:
        report = retention_apply()
    except RetentionBusyError:
        logger.info("retention: another run is working; this one stands down")
        return 0
    return report.run_id
