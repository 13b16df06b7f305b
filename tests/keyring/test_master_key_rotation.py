"""Master-key rotation re-wraps private keys in resumable, idempotent batches."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from rooms.services import message_post
from safechat.crypto.providers import key_file_add_version
from safechat.keyring.errors import RotationIncompleteError
from safechat.keyring.models import ComplianceKeyPair, UserKeyPair
from safechat.keyring.provider import get_provider, reset_provider
from safechat.keyring.rotation import (
    master_key_rotate,
    master_key_status,
    master_key_version_retire,
)
from safechat.keyring.services import clear_key_caches, message_decrypt
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def add_master_key_version(key_file: Path) -> int:
    version = key_file_add_version(key_file)
    reset_provider()
    clear_key_caches()
    return version


def test_rotation_survives_a_crash_between_batches_and_finishes_on_resume(
    master_key_file: Path,
) -> None:
    # given 7 users with keys and a message, all under version 1
    users = [make_user() for _ in range(7)]
    room = make_room(owner=users[0], members=tuple(users[1:]))
    message = message_post(sender=users[0], room=room, text="survives rotation")
    assert master_key_status().remaining == 0

    # when a new version is added and the rotation "crashes" after two batches of 2
    assert add_master_key_version(master_key_file) == 2
    master_key_rotate(batch_size=2, max_batches=2)
    partial = master_key_status()

    # then some keys are under v2, some still under v1, and everything still decrypts
    assert partial.users_by_version == {1: 3, 2: 4}
    clear_key_caches()
    for user in users:
        assert (
            message_decrypt(
                reader_id=user.pk,
                room_id=room.pk,
                message_uid=message.uid,
                epoch=message.epoch,
                sender_id=message.sender_id,
                ciphertext=bytes(message.ciphertext),
            )
            == "survives rotation"
        )

    # when the rotation resumes, and then runs again
    finished = master_key_rotate(batch_size=2)
    again = master_key_rotate(batch_size=2)

    # then everything is under v2, and the second run did nothing
    assert finished.remaining == 0
    assert set(UserKeyPair.objects.values_list("kek_version", flat=True)) == {2}
    assert set(ComplianceKeyPair.objects.values_list("kek_version", flat=True)) == {2}
    assert again.remaining == 0
    assert AuditEvent.objects.filter(action="key.master.rotated").count() == 1


def test_retiring_a_version_still_in_use_is_refused(master_key_file: Path) -> None:
    make_room(owner=make_user())
    add_master_key_version(master_key_file)
    retired_before = AuditEvent.objects.filter(action="key.master.version.retired").count()

    with pytest.raises(RotationIncompleteError):
        master_key_version_retire(actor=make_user(), version=1)
    assert AuditEvent.objects.filter(action="key.master.version.retired").count() == retired_before

    master_key_rotate()
    master_key_version_retire(actor=make_user(), version=1)
    assert AuditEvent.objects.filter(action="key.master.version.retired").count() == 1


def test_the_command_reports_status_rotates_and_refuses_early_retirement(
    master_key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_room(owner=make_user(), members=(make_user(),))
    get_provider()

    call_command("rotate_master_key", "--new-version")
    call_command("rotate_master_key", "--status")
    out = capsys.readouterr().out

    assert "added master-key version 2" in out
    assert "current master-key version: 2" in out
    assert "remaining under older versions: 0" in out
    with pytest.raises(CommandError, match="current master key"):
        call_command("rotate_master_key", "--retire", "2")


def test_a_master_key_rotation_is_recorded_with_the_commands_request_id() -> None:
    # given some wrapped keys
    make_room(owner=make_user(), members=(make_user(),))

    # when the operator rotates the master key
    call_command("rotate_master_key", "--new-version", "--batch-size", "1")

    # then each of its events names the command channel and the run's one request id
    rows = list(
        AuditEvent.objects.filter(action__startswith="key.master").values_list(
            "channel", "request_id"
        )
    )
    assert rows
    assert {channel for channel, _ in rows} == {"command"}
    assert len({request_id for _, request_id in rows}) == 1
    assert all(request_id for _, request_id in rows)
