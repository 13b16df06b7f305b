"""Exports verify offline, without Django; any change to them does not."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from audit import signing
from audit.actions import AuditAction
from audit.exportfile import export_verify
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_checkpoint_write, audit_export_start
from tests.audit.factories import make_event, make_events

pytestmark = pytest.mark.django_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Runs the verifier with Django made unimportable: it must need only `cryptography`.
WITHOUT_DJANGO = (
    "import runpy, sys; sys.modules['django'] = None; sys.argv[0] = 'verify_export'; "
    "runpy.run_module('audit.verify_export', run_name='__main__', alter_sys=True)"
)


def export_file(tmp_path: Path, *args: str) -> Path:
    output = tmp_path / "export.jsonl"
    call_command("export_audit", *args, "--output", str(output), stderr=StringIO())
    return output


def verify_offline(path: Path, *, without_django: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WITHOUT_DJANGO] if without_django else [
        sys.executable, "-m", "audit.verify_export",
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [*command, str(path), "--public-key", signing.public_key_base64()],
        capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_an_export_verifies_offline_without_django(tmp_path: Path) -> None:
    # given events and an export of all of them
    make_events(5)
    path = export_file(tmp_path)

    # when verified by the offline tool, with Django unavailable
    result = verify_offline(path)

    # then it is valid and anchored by a signed checkpoint written for it
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("export verified: 6 events (seq 1-6), 1 signed checkpoints")
    assert AuditCheckpoint.objects.get().seq == 6
    assert verify_offline(path, without_django=False).returncode == 0


def test_a_one_byte_change_to_an_event_fails_offline(tmp_path: Path) -> None:
    # given a valid export
    make_events(3)
    path = export_file(tmp_path)
    data = bytearray(path.read_bytes())

    # when one byte of the second event's username changes
    position = data.index(b'"actor_username":"system:tests"') + len('"actor_username":"s')
    data[position] ^= 0x01
    path.write_bytes(bytes(data))

    # then the offline verifier refuses it
    result = verify_offline(path)
    assert result.returncode == 1
    assert result.stdout.startswith("export INVALID")


def test_every_single_byte_change_anywhere_is_detected(tmp_path: Path) -> None:
    # given a small valid export
    make_events(2)
    path = export_file(tmp_path)
    original = path.read_bytes()
    key = signing.public_key()
    assert export_verify(path, [key]).ok

    # when any one byte is changed, then verification fails
    tampered = tmp_path / "tampered.jsonl"
    accepted = []
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0x20 if 0x41 <= data[position] <= 0x7A else 0x01
        tampered.write_bytes(bytes(data))
        if export_verify(tampered, [key]).ok:
            accepted.append(position)
    assert accepted == []


@pytest.mark.parametrize("cut", ["manifest", "last-event", "trailing-garbage"])
def test_truncated_or_extended_exports_fail(tmp_path: Path, cut: str) -> None:
    make_events(3)
    path = export_file(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    if cut == "manifest":
        lines = lines[:-1]
    elif cut == "last-event":
        del lines[-3]
    else:
        lines.append(b"\n")
    path.write_bytes(b"".join(lines))
    assert not export_verify(path, [signing.public_key()]).ok


def test_an_export_does_not_verify_under_another_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    make_events(2)
    path = export_file(tmp_path)
    result = export_verify(path, [Ed25519PrivateKey.generate().public_key()])
    assert not result.ok
    assert "unknown key" in result.message


def test_a_time_range_exports_its_events_and_the_tail_to_the_covering_checkpoint(
    tmp_path: Path,
) -> None:
    # given events 1-3, a checkpoint (4), events 5-7, one second apart
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    ticks = (start + timedelta(seconds=number) for number in range(100))
    with mock.patch("audit.store.timezone.now", side_effect=lambda: next(ticks)):
        first = make_events(3)
        audit_checkpoint_write()
        later = make_events(3)

    # when exporting from event 2 up to (not including) event 3
    path = export_file(
        tmp_path,
        "--since", first[1].occurred_at.isoformat(),
        "--until", first[2].occurred_at.isoformat(),
    )  # fmt: skip

    # then it holds events 2-4 (3 and 4 only to reach the checkpoint at 4) and verifies
    records = [json.loads(line) for line in path.read_text().splitlines()]
    header = records[0]
    assert (header["range_first_seq"], header["range_last_seq"], header["anchor_seq"]) == (2, 2, 4)
    assert [r["seq"] for r in records if r["type"] == "event"] == [2, 3, 4]
    assert [r["seq"] for r in records if r["type"] == "checkpoint"] == [4]
    assert export_verify(path, [signing.public_key()]).ok
    assert AuditCheckpoint.objects.count() == 1  # the existing one was enough
    assert later[-1].seq == 7


def test_an_empty_range_exports_and_verifies(tmp_path: Path) -> None:
    event = make_events(1)[0]
    path = export_file(tmp_path, "--until", (event.occurred_at - timedelta(days=1)).isoformat())
    result = export_verify(path, [signing.public_key()])
    assert result.ok
    assert result.message == "export verified: no events in the range"


def test_exports_are_recorded(tmp_path: Path) -> None:
    make_events(2)
    export_file(tmp_path)
    exported = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert exported.actor_type == "system"
    assert exported.actor_username.startswith("system:cli.")
    assert exported.extra["via"] == "cli"
    assert exported.extra["format"] == "jsonl"
    assert (exported.extra["first_seq"], exported.extra["last_seq"]) == (1, 2)


def test_csv_exports_guard_against_spreadsheet_formulas() -> None:
    # given an event whose user agent is a spreadsheet formula
    request = RequestFactory().get("/", HTTP_USER_AGENT='=HYPERLINK("http://evil.example")')
    make_event(request=request)

    # when exported as CSV
    export = audit_export_start(actor=None, since=None, until=None, format="csv", via="test")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.chunks).decode())))

    # then the formula is inert, and the chain fields are there
    assert rows[0]["user_agent"].startswith("'=HYPERLINK")
    assert rows[0]["hash"]
    assert rows[0]["prev_hash"] == "0" * 64
    assert json.loads(rows[0]["extra"]) == {}


@pytest.mark.parametrize(
    "args",
    [["--since", "yesterday"], ["--until", "2025-13-01"], ["--format", "xml"]],
)
def test_the_command_refuses_malformed_options(args: list[str], tmp_path: Path) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises((CommandError, SystemExit)):
        call_command("export_audit", *args, "--output", str(tmp_path / "x"), stderr=StringIO())
    assert AuditEvent.objects.count() == before


def test_since_after_until_is_refused(tmp_path: Path) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="since must be before until"):
        export_file(tmp_path, "--since", "2025-02-01", "--until", "2025-01-01")
    assert AuditEvent.objects.count() == before
