"""``python manage.py restore --from DIR [--force]``: restore a data backup once it and the
key material configured here verify (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from audit.anchors import database_identity
from safechat.backup import BackupError, restore_run
from safechat.commands import SafeChatCommand


class Command(SafeChatCommand):
    help = "Restore a data backup (made by `backup --to`) into an empty database and vault."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="source", type=Path, required=True)
        parser.add_argument(
            "--force", action="store_true", help="replace a database and vault that are not empty"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = restore_run(source=options["source"], force=options["force"])
        except BackupError as exc:
            raise CommandError("restore refused:\n" + "\n".join(exc.problems)) from None
        audit = manifest["audit"]
        self.stdout.write(
            f"restored the backup of {manifest['created_at']}: audit head seq "
            f"{audit['head_seq']}; run verify_audit and apply_retention before opening the service"
        )
        if audit.get("anchor_database") and audit["anchor_database"] != database_identity():
            self.stdout.write(
                "the anchor file's lines name the backed-up database: verify them with "
                f"verify_audit --anchor-database '{audit['anchor_database']}'"
            )
