"""``python manage.py backup --to DIR`` (data) or ``--keys-to DIR`` (key material), never
both in one run: the two must be kept apart (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from safechat.backup import BackupError, backup_create, keys_backup_create
from safechat.commands import SafeChatCommand


class Command(SafeChatCommand):
    help = "Back up the database and the vault's blobs (--to), or the key material (--keys-to)."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--to", type=Path, help="new folder for the data backup")
        target.add_argument("--keys-to", type=Path, help="new folder for the key material")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["to"] is not None:
                report = backup_create(to=options["to"])
                what = "data backup (database and vault; no key material)"
            else:
                report = keys_backup_create(to=options["keys_to"])
                what = "key backup (keep it apart from the data backups)"
        except BackupError as exc:
            raise CommandError("\n".join(exc.problems)) from None
        self.stdout.write(
            f"{what}: {report.files} files, {report.bytes} bytes in {report.directory}"
        )
