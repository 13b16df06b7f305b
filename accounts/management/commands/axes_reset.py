"""Replaces django-axes' ``axes_reset``: every lockout lifted, on the record."""

from __future__ import annotations

from typing import Any

from axes.management.commands import axes_reset

from accounts.management.commands._operator import LockoutLiftCommand


class Command(LockoutLiftCommand, axes_reset.Command):  # type: ignore[misc]
    help = "Lift every sign-in lockout (audited auth.lockout.lifted)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.report(self.lift(everything=True))
