"""What the commands that replace django.contrib.auth's, django-otp's and django-axes'
share: the operator as the audit actor, and an audited refusal."""

from __future__ import annotations

import getpass
from typing import Any, ClassVar

from django.core.management.base import CommandError

from accounts.services.operator import command_refuse, lockout_lift_by_operator
from audit.services import SystemActor
from safechat.actions import Refused
from safechat.commands import SafeChatCommand


def operator_actor() -> SystemActor:
    """The operator running the command, by their system account (``cli.<name>``)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in name.lower())
    cleaned = cleaned if cleaned[:1].isalpha() else f"u{cleaned}"
    return SystemActor(f"cli.{cleaned[:50]}")


class RefusedCommand(SafeChatCommand):
    """A command SafeChat refuses: it keeps the arguments of the command it replaces (so
    any invocation is answered, not an argument error), writes nothing, records the
    refusal (``account.admin.refused``, channel ``command``) and says what to use instead.

    Put it first among the bases: ``class Command(RefusedCommand, TheirCommand)``.
    """

    instead: ClassVar[str]

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            command_refuse(
                actor=operator_actor(), command=self._command_name(), message=self.instead
            )
        except Refused as refused:
            raise CommandError(str(refused)) from None

    def _command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]


class LockoutLiftCommand(SafeChatCommand):
    """A django-axes reset command, through ``lockout_lift_by_operator`` (audited
    ``auth.lockout.lifted``, channel ``command``). Put it first among the bases."""

    def lift(
        self,
        *,
        username: str | None = None,
        ip_address: str | None = None,
        everything: bool = False,
    ) -> int:
        return lockout_lift_by_operator(
            actor=operator_actor(),
            command=type(self).__module__.rsplit(".", 1)[-1],
            username=username,
            ip_address=ip_address,
            everything=everything,
        )

    def report(self, count: int) -> None:
        self.stdout.write(f"{count} attempts removed." if count else "No attempts found.")
