"""Replaces django-axes' ``axes_reset_ip``: lockouts of addresses lifted, on the record."""

from __future__ import annotations

from typing import Any

from axes.management.commands import axes_reset_ip

from accounts.management.commands._operator import LockoutLiftCommand


class Command(LockoutLiftCommand, axes_reset_ip.Command):  # type: ignore[misc]
    help = "Lift the sign-in lockouts of these addresses (audited auth.lockout.lifted, each)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.report(sum(self.lift(ip_address=ip) for ip in options["ip"]))
