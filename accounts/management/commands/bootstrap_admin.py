"""Print the one-time URL that creates the first security admin of a fresh install."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.selectors import people_exist
from accounts.services import BootstrapRefused, bootstrap_token_create
from safechat.commands import SafeChatCommand


class Command(SafeChatCommand):
    help = "Print a one-time bootstrap URL (valid one hour, single use) while no user exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-no-users",
            action="store_true",
            help="Do nothing (and succeed) when users exist; for `make run`.",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="The portal's address (default http://localhost:$PORT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if people_exist():
            if options["if_no_users"]:
                return
            raise CommandError("Users exist already; invite people from the portal instead.")
        base = options["base_url"] or f"http://localhost:{os.environ.get('PORT', '8000')}"
        try:
            token = bootstrap_token_create()
        except BootstrapRefused as exc:
            raise CommandError(str(exc)) from exc
        url = f"{base.rstrip('/')}/accounts/bootstrap/{token}/"
        self.stdout.write(
            "\nNo account exists yet. Create the first security administrator here\n"
            "(works once, for one hour; run `manage.py bootstrap_admin` again for a new one):\n\n"
            f"    {url}\n"
        )
