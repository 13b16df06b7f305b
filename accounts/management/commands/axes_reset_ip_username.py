"""Replaces django-axes' ``axes_reset_ip_username``: one lockout lifted, on the record."""

from __future__ import annotations

from typing import Any

from axes.management.commands import axes_reset_ip_username

from accounts.management.commands._operator import LockoutLiftCommand


class Command(LockoutLiftCommand, axes_reset_ip_username.Command):  # type: ignore[misc]
    help = "Lift the sign-in lockout of one address and username (audited auth.lockout.lifted)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.report(self.lift(ip_address=options["ip"], username=options["username"]))
