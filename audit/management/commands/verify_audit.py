"""Verify the whole audit log: ``python manage.py verify_audit``.

Exit 0 with a one-line summary when intact; exit 1 naming the first broken seq
and what is wrong (edited, deleted, reordered, bad signature, checkpoint mismatch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from audit.selectors import DEFAULT_CHUNK_SIZE
from audit.services import audit_chain_verify
from safechat.commands import SafeChatCommand


class Command(SafeChatCommand):
    help = "Re-compute the audit hash chain and check every checkpoint signature and anchor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
        parser.add_argument(
            "--anchor-file", type=Path, help="anchor file to check (default: the configured one)"
        )
        parser.add_argument("--no-anchors", action="store_true", help="skip the anchor file")
        parser.add_argument(
            "--anchor-database",
            help="check the anchor lines of this database identity (a restored copy's "
            "original, as `restore` prints it; default: this database's own)",
        )
        parser.add_argument(
            "--record", action="store_true", help="record the result as an audit event"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_chain_verify(
            chunk_size=options["chunk_size"],
            anchor_file=options["anchor_file"],
            use_anchor_file=not options["no_anchors"],
            record=options["record"],
            anchor_database=options["anchor_database"],
        )
        if result.intact:
            self.stdout.write(result.summary)
            return
        self.stderr.write(result.summary)
        for problem in result.problems[1:]:
            self.stderr.write(f"  also: {problem}")
        raise SystemExit(1)
