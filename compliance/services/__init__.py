"""Writes of retention and legal holds: one function per action, for the admin, the
management command and the Celery task."""

from compliance.services._common import (
    ComplianceRefused,
    RetentionBusyError,
    RetentionRightWithdrawnError,
)
from compliance.services.export_job import (
    ExportDownload,
    export_download,
    export_expire_due,
    export_run,
)
from compliance.services.exports import export_approve, export_refuse, export_request
from compliance.services.holds import legal_hold_place, legal_hold_release
from compliance.services.policies import retention_policy_set
from compliance.services.retention import RetentionReport, RoomCounts, retention_apply
from compliance.services.runs import retention_run_request

__all__ = [
    "ComplianceRefused",
    "ExportDownload",
    "RetentionBusyError",
    "RetentionReport",
    "RetentionRightWithdrawnError",
    "RoomCounts",
    "export_approve",
    "export_download",
    "export_expire_due",
    "export_refuse",
    "export_request",
    "export_run",
    "legal_hold_place",
    "legal_hold_release",
    "retention_apply",
    "retention_policy_set",
    "retention_run_request",
]
