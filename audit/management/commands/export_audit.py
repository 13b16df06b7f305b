"""Export audit events: ``python manage.py export_audit --since 2025-01-01 --format jsonl``.

The export is recorded (``audit.exported``, actor ``system:cli`` with the OS user).
JSONL verifies offline with ``python -m audit.verify_export``; CSV is for reading.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from audit.actors import SystemActor
from audit.services import audit_export_start
from audit.services.export import EXPORT_FORMATS
from safechat.commands import SafeChatCommand


def _time(value: str) -> datetime:
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"not an ISO-8601 date or time: {value!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Command(SafeChatCommand):
    help = "Export audit events of [--since, --until) as JSONL (verifiable) or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_time, help="ISO-8601, inclusive (UTC if no zone)")
        parser.add_argument("--until", type=_time, help="ISO-8601, exclusive (UTC if no zone)")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
        parser.add_argument("--output", type=Path, help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):
            operator = "unknown"
        try:
            export = audit_export_start(
                actor=SystemActor(f"cli.{_system_name(operator)}"),
                since=options["since"],
                until=options["until"],
                format=options["format"],
                via="cli",
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        output: Path | None = options["output"]
        if output is None:
            for chunk in export.chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        # The export holds personal data: readable by the operator only.
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            for chunk in export.chunks:
                handle.write(chunk)
        self.stderr.write(
            f"wrote {output}: seq {export.first_seq}-{export.last_seq}"
            + (f", anchored at seq {export.anchor_seq}" if export.anchor_seq else "")
        )


def _system_name(operator: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in operator.lower())
    return (cleaned or "unknown")[:50]
