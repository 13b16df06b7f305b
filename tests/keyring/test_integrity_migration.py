"""The migration that introduced record MACs: rows written before it are MACed with the
master key, and everything stored keeps decrypting (issue 12, case 3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from rooms.models import Membership, Room
from safechat.crypto import (
    HpkeInfo,
    HpkePrivateKey,
    KeyPurpose,
    SymmetricKey,
    encrypt,
    seal_key,
)
from safechat.keyring.models import SealedEpochKey, UserKeyPair
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

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("keyring", "0002_initial")]
AFTER = [("keyring", "0004_integrity_macs_backfill")]


@pytest.fixture
def before_macs() -> Iterator[object]:
    """The keyring schema as it was before MACs; the latest schema again afterwards."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
        clear_key_caches()


def test_rows_from_before_the_migration_are_maced_and_keep_decrypting(
    before_macs: object,
) -> None:
    # given keys and a message written the way the previous release wrote them
    apps = before_macs
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

    # when the migration runs
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    clear_key_caches()

    # then every row carries a MAC, the copies keep their legacy associated data,
    # and the message still decrypts through the (now verified) copy
    assert not SealedEpochKey.objects.filter(mac=b"").exists()
    assert set(SealedEpochKey.objects.values_list("aad_format", flat=True)) == {SEAL_AAD_LEGACY}
    assert UserKeyPair.objects.get(user=owner).mac != b""
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
