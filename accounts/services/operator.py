"""What an operator with a shell on the server does through ``manage.py``: on the record.

A command carries no signed-in person: its actor is the operator
(``audit.services.SystemActor("cli.<system user>")``) and its channel ``command``
(``safechat.commands.SafeChatCommand``). The commands of django.contrib.auth,
django-otp and django-axes that would change a password, a second factor or a lockout
outside these services are replaced by ``accounts/management/commands``: each is either
refused here or lifts lockouts here, audited either way (docs/accounts.md, "Who holds
which power").
"""

from __future__ import annotations

from typing import NoReturn

from axes.handlers.proxy import AxesProxyHandler
from django.core.exceptions import ValidationError

from audit.actions import AuditAction
from audit.services import SystemActor, audit_record
from safechat.actions import Refused, action, action_transaction


@action
def command_refuse(*, actor: SystemActor, command: str, message: str) -> NoReturn:
    """Refuse the management command ``command``: nothing is written but the refusal.

    Raises ``Refused`` (its message is ``message``, which names the audited path to use
    instead), audited ``account.admin.refused`` with reason ``command`` and the
    operation ``command.<name>``.
    """
    raise Refused(
        message,
        actor=actor,
        action=AuditAction.ACCOUNT_ADMIN_REFUSED,
        reason="command",
        extra={"operation": f"command.{command}"},
    )


@action
def lockout_lift_by_operator(
    *,
    actor: SystemActor,
    command: str,
    username: str | None = None,
    ip_address: str | None = None,
    everything: bool = False,
) -> int:
    """Clear django-axes failure counts from the command line; returns the rows cleared.

    The break-glass path when every security admin is locked out (``lockout_lift`` is
    the everyday one). With ``username`` and ``ip_address`` only that pair is cleared;
    with one of them, everything of it; with ``everything`` (and neither), every count.
    Audited ``auth.lockout.lifted`` with ``by: operator``, the command and what was
    cleared. Raises ``ValidationError`` when nothing is named and ``everything`` is off.
    """
    if not (username or ip_address or everything):
        raise ValidationError("Name a username or an address.")
    with action_transaction():
        cleared = int(
            AxesProxyHandler.reset_attempts(
                ip_address=ip_address or None, username=username or None
            )
            or 0
        )
        audit_record(
            actor=actor,
            action=AuditAction.AUTH_LOCKOUT_LIFTED,
            extra={
                "by": "operator",
                "command": command,
                "username": username or None,
                "ip_address": ip_address or None,
                "everything": bool(everything and not (username or ip_address)),
                "records": cleared,
            },
        )
    return cleared
