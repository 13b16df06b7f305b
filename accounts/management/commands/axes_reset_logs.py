"""Replaces django-axes' ``axes_reset_logs``: refused, and the refusal audited.

SafeChat keeps django-axes' own sign-in logs off (``AXES_DISABLE_ACCESS_LOG``): the
audit log records every sign-in, and its records are purged only by retention.
"""

from __future__ import annotations

from axes.management.commands import axes_reset_logs

from accounts.management.commands._operator import RefusedCommand


class Command(RefusedCommand, axes_reset_logs.Command):  # type: ignore[misc]
    help = "Refused: sign-ins are recorded in the audit log, kept by its retention."
    instead = (
        "SafeChat keeps no django-axes sign-in logs to purge: every sign-in is in the audit "
        "log, which only its retention purges. To lift a lockout use axes_reset_username, "
        "axes_reset_ip (audited), or a security admin's lockouts page."
    )
