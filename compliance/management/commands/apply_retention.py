"""``python manage.py apply_retention [--dry-run] [--room ID] [--batch-size N]``."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from compliance.services import ComplianceRefused, RetentionReport, retention_apply
from safechat.commands import SafeChatCommand


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"


class Command(SafeChatCommand):
    help = (
        "Purge messages and files past their retention policy and not under legal hold, "
        "then crypto-shred emptied epochs; --dry-run only reports what would go."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
        parser.add_argument("--room", type=int, default=None, help="only this room (its id)")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="the most messages per batch"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:  # the service refuses (and audits) a room or batch size it cannot use
            report = retention_apply(
                dry_run=options["dry_run"],
                room_id=options["room"],
                batch_size=options["batch_size"],
            )
        except ComplianceRefused as refused:
            raise CommandError(str(refused)) from None
        self._print(report)

    def _print(self, report: RetentionReport) -> None:
        verb = "would purge" if report.dry_run else "purged"
        kind = "dry run" if report.dry_run else "run"
        self.stdout.write(f"retention {kind} {report.run_id}")
        if report.resumed:
            self.stdout.write(f"completed the work of interrupted run(s) {report.resumed}")
        if report.backup_warning:
            self.stderr.write(f"warning: {report.backup_warning}")
        self.stdout.write(
            "room\tdays\tmessages\trevisions\treactions\tmentions\tfiles\tepochs\toldest\tnewest"
        )
        for room in report.rooms:
            self.stdout.write(
                f"{room.room_id}\t{room.keep_days}\t{room.messages}\t{room.revisions}\t"
                f"{room.reactions}\t{room.mentions}\t{room.files}\t{room.epochs}\t"
                f"{_when(room.oldest)}\t{_when(room.newest)}"
            )
        totals = report.totals()
        self.stdout.write(
            f"{verb}: {totals['messages']} messages, {totals['revisions']} earlier texts, "
            f"{totals['reactions']} reactions, {totals['mentions']} mentions, "
            f"{totals['files']} files; epochs {'to shred' if report.dry_run else 'shredded'}: "
            f"{totals['epochs']}"
        )
