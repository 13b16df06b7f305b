"""Replaces django-axes' ``axes_reset_username``: lockouts of usernames lifted, on the record."""

from __future__ import annotations

from typing import Any

from axes.management.commands import axes_reset_username

from accounts.management.commands._operator import LockoutLiftCommand


class Command(LockoutLiftCommand, axes_reset_username.Command):  # type: ignore[misc]
    help = "Lift the sign-in lockouts of these usernames (audited auth.lockout.lifted, each)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.report(sum(self.lift(username=name) for name in options["username"]))
