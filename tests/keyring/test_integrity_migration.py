"""The migration that introduced record MACs: rows written before it are MACed with the
master key when the operator asks for it once, and everything stored keeps decrypting
(issue 12, case 3); a re-run never vouches for a row an insider emptied."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from audit.models import AuditEvent
from rooms.models import Membership, Room
from rooms.services import message_post, room_key_rotate
from safechat.crypto import (
    HpkeInfo,
    HpkePrivateKey,
    KeyPurpose,
    SymmetricKey,
    encrypt,
    seal_key,
)
from safechat.keyring.errors import BackfillRefused, IntegrityFailure
from safechat.keyring.models import (
    ComplianceKeyPair,
    RecordMacKey,
    RoomEpoch,
    SealedEpochKey,
    UserKeyPair,
)
from safechat.keyring.provider import get_provider
from safechat.keyring.services import (
    SEAL_AAD_LEGACY,
    clear_key_caches,
    compliance_private_key_aad,
    epoch_seal_aad,
    message_aad,
    message_decrypt,
    room_epoch_key_for,
    user_private_key_aad,
)
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("keyring", "0002_initial")]
AFTER = [("keyring", "0004_integrity_macs_backfill")]
FLAG = "SAFECHAT_RECORD_MAC_BACKFILL"


@contextmanager
def as_insider() -> Iterator[None]:
    """Write as a database superuser with triggers and rules bypassed (PostgreSQL)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def backfill_unrecorded() -> Iterator[Callable[[], None]]:
    """What an insider does so that the next deployment's ``migrate`` runs 0004 again;
    recorded as applied again afterwards (the flush between tests keeps that table)."""

    # 0004 and every migration that depends on it, of any app (a later app's migration
    # that needs a keyring one): Django refuses a history with a gap.
    graph = MigrationLoader(connection).graph
    applied = set(MigrationRecorder(connection).applied_migrations())
    dependents, pending = set(), [graph.node_map[AFTER[0]]]
    while pending:
        node = pending.pop()
        if node.key not in dependents:
            dependents.add(node.key)
            pending.extend(node.children)
    later = sorted(key for key in dependents if key in applied)

    def unrecord() -> None:
        with connection.cursor() as cursor:
            for app, name in later:
                cursor.execute(
                    "DELETE FROM django_migrations WHERE app = %s AND name = %s", [app, name]
                )

    yield unrecord
    recorder = MigrationRecorder(connection)
    for key in later:
        if key not in recorder.applied_migrations():
            recorder.record_applied(*key)


@pytest.fixture
def before_macs() -> Iterator[object]:
    """The keyring schema as it was before MACs; the latest schema again afterwards."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        # Whatever the test left behind is flushed next; the schema must be the latest.
        with mock.patch.dict(os.environ, {FLAG: "1"}):
            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate(executor.loader.graph.leaf_nodes())
        clear_key_caches()


def legacy_rows(apps: object) -> tuple[Room, uuid.UUID, bytes, SymmetricKey]:
    """Keys and a message written the way the previous release wrote them: (room, message
    uid, ciphertext, epoch key); the room's creator is its only member."""
    user_keys = apps.get_model("keyring", "UserKeyPair")  # type: ignore[attr-defined]
    compliance_keys = apps.get_model("keyring", "ComplianceKeyPair")  # type: ignore[attr-defined]
    epochs = apps.get_model("keyring", "RoomEpoch")  # type: ignore[attr-defined]
    copies = apps.get_model("keyring", "SealedEpochKey")  # type: ignore[attr-defined]
    provider = get_provider()
    owner = make_user()
    room = Room.objects.create(name="from the last release", created_by=owner)
    Membership.objects.create(room=room, user=owner, role=Membership.Role.OWNER)
    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    wrapped = provider.wrap(private.to_bytes(), aad=user_private_key_aad(owner.pk))
    user_keys.objects.create(
        user_id=owner.pk,
        public_key=private.public_key().to_bytes(),
        wrapped_private_key=wrapped.to_bytes(),
        kek_version=wrapped.version,
    )
    compliance_private = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    compliance = compliance_keys.objects.create(
        public_key=compliance_private.public_key().to_bytes(),
        wrapped_private_key=b"",
        kek_version=0,
    )
    cwrapped = provider.wrap(
        compliance_private.to_bytes(), aad=compliance_private_key_aad(compliance.pk)
    )
    compliance_keys.objects.filter(pk=compliance.pk).update(
        wrapped_private_key=cwrapped.to_bytes(), kek_version=cwrapped.version
    )
    epoch = epochs.objects.create(room_id=room.pk, number=1, reason="created")
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    legacy_aad = epoch_seal_aad(room.pk, 1)
    copies.objects.create(
        epoch=epoch,
        user_id=owner.pk,
        sealed=seal_key(private.public_key(), key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=legacy_aad),
    )
    copies.objects.create(
        epoch=epoch,
        compliance_key_id=compliance.pk,
        sealed=seal_key(
            compliance_private.public_key(), key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=legacy_aad
        ),
    )
    uid = uuid.uuid4()
    aad = message_aad(room_id=room.pk, message_uid=uid, epoch=1, sender_id=owner.pk)
    ciphertext = encrypt(key, b"written before the migration", aad=aad)
    return room, uid, ciphertext, key


def migrate_to_macs() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    clear_key_caches()


def test_rows_from_before_the_migration_are_maced_and_keep_decrypting(
    before_macs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given keys and a message written the way the previous release wrote them
    room, uid, ciphertext, key = legacy_rows(before_macs)
    owner = room.created_by
    assert owner is not None

    # when the migration runs, the operator asking for the one-time backfill
    monkeypatch.setenv(FLAG, "1")
    migrate_to_macs()

    # then every row carries a MAC, each one audited, the copies keep their legacy
    # associated data, and the message still decrypts through the (now verified) copy
    assert not SealedEpochKey.objects.filter(mac=b"").exists()
    assert set(SealedEpochKey.objects.values_list("aad_format", flat=True)) == {SEAL_AAD_LEGACY}
    assert UserKeyPair.objects.get(user=owner).mac != b""
    assert AuditEvent.objects.filter(action="key.record.backfilled").count() == 1 + 1 + 2
    text = message_decrypt(
        reader_id=owner.pk,
        room_id=room.pk,
        message_uid=uid,
        epoch=1,
        sender_id=owner.pk,
        ciphertext=ciphertext,
    )
    assert text == "written before the migration"
    assert room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk).same_material(key)


def test_rows_without_macs_stop_the_migration_unless_the_operator_asks(
    before_macs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given rows written the way the previous release wrote them, and no flag
    legacy_rows(before_macs)
    monkeypatch.delenv(FLAG, raising=False)

    # when the migration runs
    with pytest.raises(BackfillRefused, match=FLAG):
        migrate_to_macs()

    # then nothing was MACed, no record-MAC key made, nothing audited as vouched for
    assert not RecordMacKey.objects.exists()
    assert not SealedEpochKey.objects.exclude(mac=b"").exists()
    assert not AuditEvent.objects.filter(action="key.record.backfilled").exists()


@pytest.mark.parametrize("asked", [False, True], ids=["no flag", "flag left set"])
def test_a_rerun_backfill_never_vouches_for_a_swapped_compliance_key(
    asked: bool, monkeypatch: pytest.MonkeyPatch, backfill_unrecorded: Callable[[], None]
) -> None:
    # given an insider who swapped the compliance public key for their own, emptied its MAC
    # and un-recorded the backfill migration so that the next deployment runs it again
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="hello")
    attacker = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    compliance = ComplianceKeyPair.objects.get(active=True)
    with as_insider():
        ComplianceKeyPair.objects.filter(pk=compliance.pk).update(
            public_key=attacker.public_key().to_bytes(), mac=b""
        )
    backfill_unrecorded()
    clear_key_caches()
    if asked:
        monkeypatch.setenv(FLAG, "1")
    else:
        monkeypatch.delenv(FLAG, raising=False)
    epochs_before = RoomEpoch.objects.filter(room=room).count()

    # when the next deployment runs migrate
    with pytest.raises(BackfillRefused):
        call_command("migrate", "keyring", verbosity=0)

    # then the swapped key got no MAC, nothing was audited as vouched for, and it is
    # refused at its next use: nothing is sealed to it
    assert bytes(ComplianceKeyPair.objects.get(pk=compliance.pk).mac) == b""
    assert not AuditEvent.objects.filter(action="key.record.backfilled").exists()
    clear_key_caches()
    with pytest.raises(IntegrityFailure):
        room_key_rotate(actor=owner, room=room)
    assert RoomEpoch.objects.filter(room=room).count() == epochs_before
