"""The retention job, on Celery beat: takes nothing, calls the service, safe to run twice
(a second run at the same time is refused; a later one completes what an earlier left)."""

from __future__ import annotations

import logging

from celery import shared_task

from accounts.models import User
from audit.actors import SYSTEM_RETENTION
from compliance.services import ComplianceRefused, RetentionBusyError, retention_apply
from compliance.services.export_job import export_expire_due, export_run
from compliance.services.supervision import (
    SYSTEM_SUPERVISION,
    SupervisionBusyError,
    supervision_run,
)

logger = logging.getLogger(__name__)


@shared_task(name="compliance.apply_retention")
def apply_retention_task(requested_by: int | None = None) -> int:
    """Purge what has expired and is not held; returns the retention run's id (0 if
    another run is working, or the run was refused: audited either way).

    ``requested_by``: the compliance officer who asked for this run now
    (``retention_run_request``); the run acts as them, their right checked again as it
    starts. None: the beat schedule's run, as the system.
    """
    requester = User.objects.filter(pk=requested_by).first() if requested_by else None
    if requested_by and requester is None:
        logger.info("retention: the person who asked for this run no longer exists")
        return 0
    try:
        report = retention_apply(actor=requester or SYSTEM_RETENTION)
    except RetentionBusyError:
        logger.info("retention: another run is working; this one stands down")
        return 0
    except ComplianceRefused:  # audited by the service
        logger.info("retention: the requested run was refused")
        return 0
    return report.run_id


@shared_task(name="compliance.export_run")
def export_run_task(export_id: int) -> str:
    """Build an approved export's archive (``export_run``); idempotent: a request not
    approved (already running, finished, refused) is left alone. Returns its state."""
    export = export_run(export_id=export_id)
    return export.state if export is not None else "not approved"


@shared_task(name="compliance.expire_exports")
def expire_exports_task() -> int:
    """Expire finished eDiscovery archives past their expiry (``export_expire_due``);
    returns how many. Safe to run twice: an expired one is not expired again."""
    return export_expire_due()


@shared_task(name="compliance.supervision_run")
def supervision_run_task(requested_by: int | None = None) -> int:
    """Match what was written since the last run (``supervision_run``); returns the run's
    id, 0 when another run is working or the run was refused (audited either way).

    ``requested_by``: the officer who asked for it now (``supervision_run_request``), the
    run acting as them; None: the beat schedule's run, as the system. Safe to run twice:
    a later run resumes where the earlier one committed its cursor.
    """
    requester = User.objects.filter(pk=requested_by).first() if requested_by else None
    if requested_by and requester is None:
        logger.info("supervision: the person who asked for this run no longer exists")
        return 0
    try:
        run = supervision_run(actor=requester or SYSTEM_SUPERVISION)
    except SupervisionBusyError:
        logger.info("supervision: another run is working; this one stands down")
        return 0
    except ComplianceRefused:
        logger.info("supervision: the requested run was refused")
        return 0
    return run.pk
