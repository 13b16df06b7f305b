"""Signed checkpoints, their anchors outside the database, and the signing key."""

from __future__ import annotations

import base64
import json
import socket
import stat
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from audit import chain, signing
from audit.actions import AuditAction
from audit.anchors import database_identity
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_checkpoint_write
from audit.tasks import audit_checkpoint_write_task
from safechat.celery import app as celery_app
from tests.audit.conftest import TEST_SIGNING_SEED
from tests.audit.factories import checkpoint_count, log_state, make_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run after-commit callbacks of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_checkpoint_signs_the_head_including_its_own_event(
    audit_settings: Path, on_commit: Callable[..., Any]
) -> None:
    # given three events
    make_events(3)

    # when a checkpoint is written
    with on_commit():
        checkpoint = audit_checkpoint_write()

    # then it covers seq 4, its own audit.checkpoint.written event, and is signed by our key
    assert checkpoint is not None
    event = AuditEvent.objects.get(seq=4)
    assert event.action == AuditAction.AUDIT_CHECKPOINT_WRITTEN
    assert event.actor_username == "system:audit"
    assert (checkpoint.seq, checkpoint.head_hash) == (4, event.hash)
    record = {
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "created_at": chain.format_time(checkpoint.created_at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }
    keys = {chain.key_id_for(signing.public_key()): signing.public_key()}
    assert chain.checkpoint_signature_valid(record, keys)

    # and the same record is appended to the anchor file, readable by the owner only
    lines = audit_settings.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{**record, "database": database_identity()}]
    assert stat.S_IMODE(audit_settings.stat().st_mode) == 0o600


def test_an_idle_or_empty_log_gets_no_new_checkpoint() -> None:
    # given an empty log, then no checkpoint
    assert audit_checkpoint_write() is None
    make_events(2)
    assert audit_checkpoint_write() is not None
    before = (log_state(), checkpoint_count())

    # when nothing happened since, then the beat job writes nothing at all
    assert audit_checkpoint_write() is None
    assert (log_state(), checkpoint_count()) == before


def test_every_nth_event_queues_a_checkpoint_after_commit(
    settings: Any, on_commit: Callable[..., Any]
) -> None:
    # given a checkpoint every 3 events
    settings.SAFECHAT_AUDIT_CHECKPOINT_EVERY = 3
    with mock.patch.object(celery_app, "send_task") as delay:
        # when 2 events are recorded, then nothing is queued; the 3rd queues one
        with on_commit():
            make_events(2)
        assert delay.call_count == 0
        with on_commit():
            make_events(1)
        assert delay.call_count == 1
    # the task queued is the checkpoint task, by the name it is registered under
    assert delay.call_args.args == (audit_checkpoint_write_task.name,)


def test_a_broker_failure_does_not_fail_the_recorded_action(
    settings: Any, on_commit: Callable[..., Any]
) -> None:
    settings.SAFECHAT_AUDIT_CHECKPOINT_EVERY = 1
    with (
        mock.patch.object(celery_app, "send_task", side_effect=ConnectionError("down")),
        on_commit(),
    ):
        events = make_events(1)
    assert AuditEvent.objects.filter(seq=events[0].seq).exists()


def test_the_task_writes_a_checkpoint_once() -> None:
    make_events(2)
    assert audit_checkpoint_write_task() == 3
    assert audit_checkpoint_write_task() is None
    assert checkpoint_count() == 1


def test_checkpoints_are_sent_to_syslog_too(settings: Any, on_commit: Callable[..., Any]) -> None:
    # given a syslog receiver
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        settings.SAFECHAT_AUDIT_SYSLOG_ADDRESS = f"udp://127.0.0.1:{receiver.getsockname()[1]}"
        make_events(1)

        # when a checkpoint is written
        with on_commit():
            checkpoint = audit_checkpoint_write()

        # then syslog receives the signed record
        message = receiver.recv(65536).decode()
    assert checkpoint is not None
    assert "safechat-audit-checkpoint" in message
    assert checkpoint.signature in message


def test_an_unwritable_anchor_file_is_logged_not_raised(
    settings: Any, tmp_path: Path, on_commit: Callable[..., Any], caplog: Any
) -> None:
    settings.SAFECHAT_AUDIT_ANCHOR_FILE = str(tmp_path)  # a directory
    make_events(1)
    with on_commit():
        assert audit_checkpoint_write() is not None
    assert "could not append the audit checkpoint" in caplog.text


def test_the_development_key_file_is_generated_once_with_mode_0600(
    settings: Any, tmp_path: Path
) -> None:
    # given no inline key and a key file that does not exist yet
    key_file = tmp_path / "keys" / "audit-signing.key"
    settings.SAFECHAT_AUDIT_SIGNING_KEY = ""
    settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE = str(key_file)
    signing.cache_clear()

    # when the key is first needed, then it is generated, private, and reused
    first = signing.public_key_base64()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    signing.cache_clear()
    assert signing.public_key_base64() == first


def test_a_key_file_readable_by_others_is_refused(settings: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "audit-signing.key"
    key_file.write_text(base64.b64encode(b"\x01" * 32).decode())
    key_file.chmod(0o644)
    settings.SAFECHAT_AUDIT_SIGNING_KEY = ""
    settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE = str(key_file)
    signing.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="chmod 600"):
        signing.signing_key()


def test_production_never_generates_a_key(settings: Any, tmp_path: Path) -> None:
    settings.IS_PRODUCTION = True
    settings.SAFECHAT_AUDIT_SIGNING_KEY = ""
    settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "missing.key")
    signing.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        signing.signing_key()
    assert not (tmp_path / "missing.key").exists()


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_inline_key_is_refused(settings: Any, value: str) -> None:
    settings.SAFECHAT_AUDIT_SIGNING_KEY = value
    signing.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="SAFECHAT_AUDIT_SIGNING_KEY"):
        signing.signing_key()


def test_a_checkpoint_without_a_key_writes_nothing(settings: Any) -> None:
    make_events(2)
    before = (log_state(), checkpoint_count())
    settings.SAFECHAT_AUDIT_SIGNING_KEY = ""
    settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE = ""
    signing.cache_clear()
    with pytest.raises(ImproperlyConfigured):
        audit_checkpoint_write()
    assert (log_state(), checkpoint_count()) == before


def test_audit_public_key_prints_the_public_half() -> None:
    out = StringIO()
    call_command("audit_public_key", "--key-id", stdout=out)
    key_line, id_line = out.getvalue().splitlines()
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_line))
    assert chain.public_key_raw(public) == chain.public_key_raw(signing.public_key())
    assert id_line == f"key_id {chain.key_id_for(public)}"
    pem = StringIO()
    call_command("audit_public_key", "--pem", stdout=pem)
    assert pem.getvalue().startswith("-----BEGIN PUBLIC KEY-----")


def test_the_signing_key_is_not_in_the_database() -> None:
    # Nothing of the audit app stores key material: only public key ids and signatures.
    make_events(1)
    checkpoint = audit_checkpoint_write()
    assert checkpoint is not None
    seed = base64.b64decode(TEST_SIGNING_SEED)
    for model in (AuditEvent, AuditCheckpoint):
        for row in model.objects.values():
            assert seed.hex() not in json.dumps(row, default=str)
