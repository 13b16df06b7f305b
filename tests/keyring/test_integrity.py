"""Someone who can write the database but holds no master key cannot read new content
(issue 12, case 3): public keys and sealed copies are vouched for by the master key.

The tampering runs as the insider would: on PostgreSQL as a superuser with
``session_replication_role = replica`` (no trigger or rule stops the write).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from audit.models import AuditEvent
from rooms.models import Message
from rooms.services import message_post, room_key_rotate
from safechat.crypto import (
    HpkeInfo,
    HpkePrivateKey,
    HpkePublicKey,
    KeyPurpose,
    SymmetricKey,
    seal_key,
)
from safechat.keyring import integrity
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.models import (
    ComplianceKeyPair,
    RecordMacKey,
    RoomEpoch,
    SealedEpochKey,
    UserKeyPair,
)
from safechat.keyring.services import (
    SEAL_AAD_LEGACY,
    SEAL_AAD_RECIPIENT,
    clear_key_caches,
    compliance_epoch_key,
    epoch_seal_aad,
    message_decrypt,
    room_epoch_key_for,
)
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

# Transactional: the tampering events must survive the refused action's rollback.
pytestmark = pytest.mark.django_db(transaction=True)


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


def integrity_events() -> list[tuple[object, object]]:
    """(kind, ref) of each recorded integrity failure (recorded even when the refused
    action rolled back)."""
    events = list(AuditEvent.objects.filter(action="key.integrity.failed"))
    return [(event.extra["kind"], event.extra["ref"]) for event in events]


def read(message: Message, reader_id: int) -> str:
    return message_decrypt(
        reader_id=reader_id,
        room_id=message.room_id,
        message_uid=message.uid,
        epoch=message.epoch,
        sender_id=message.sender_id,
        ciphertext=bytes(message.ciphertext),
    )


def test_a_swapped_compliance_public_key_is_refused_and_nothing_is_sealed_to_it() -> None:
    # given a room, and an insider who puts their own public key in the compliance row
    owner = make_user()
    room = make_room(owner=owner)
    attacker = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    compliance = ComplianceKeyPair.objects.get(active=True)
    with as_insider():
        ComplianceKeyPair.objects.filter(pk=compliance.pk).update(
            public_key=attacker.public_key().to_bytes()
        )
    epochs_before = RoomEpoch.objects.filter(room=room).count()

    # when the next epoch starts, then it is refused as tampering
    with pytest.raises(IntegrityFailure) as failure:
        room_key_rotate(actor=owner, room=room)

    assert failure.value.kind == "public-key"
    assert failure.value.ref == f"compliance:{compliance.pk}"
    assert RoomEpoch.objects.filter(room=room).count() == epochs_before
    assert integrity_events() == [("public-key", f"compliance:{compliance.pk}")]


def test_a_swapped_member_public_key_is_refused() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    attacker = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    with as_insider():
        UserKeyPair.objects.filter(user=member).update(public_key=attacker.public_key().to_bytes())

    with pytest.raises(IntegrityFailure) as failure:
        room_key_rotate(actor=owner, room=room)

    assert (failure.value.kind, failure.value.ref) == ("public-key", f"user:{member.pk}")


def test_a_copy_resealed_by_an_insider_is_never_used_to_encrypt() -> None:
    # given members of a room, and an insider who seals an epoch key of their own choosing
    # to each member's (genuine) public key and puts it in place of their copies
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message_post(sender=owner, room=room, text="before")
    epoch = RoomEpoch.objects.get(room=room, number=1)
    chosen = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    with as_insider():
        for copy in SealedEpochKey.objects.filter(epoch=epoch, user__isnull=False):
            keypair = UserKeyPair.objects.get(user__sealed_epoch_keys=copy)
            public = HpkePublicKey.from_bytes(
                bytes(keypair.public_key), purpose=KeyPurpose.USER_HPKE
            )
            aad = epoch_seal_aad(
                room.pk,
                1,
                recipient=f"user:{copy.user_id}",
                fingerprint=public.fingerprint(),
                aad_format=SEAL_AAD_RECIPIENT,
            )
            resealed = seal_key(public, chosen, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)
            SealedEpochKey.objects.filter(pk=copy.pk).update(sealed=resealed)
    clear_key_caches()  # another process, or the cache expired
    posted_before = Message.objects.filter(room=room).count()

    # when a member posts, then the copy is refused and nothing is encrypted under it
    with pytest.raises(IntegrityFailure) as failure:
        message_post(sender=member, room=room, text="the attacker must not read this")

    assert failure.value.kind == "epoch-copy"
    assert Message.objects.filter(room=room).count() == posted_before
    assert integrity_events() == [("epoch-copy", f"room {room.pk} epoch 1 user:{member.pk}")]
    # and reading is refused the same way, never answered with the chosen key
    with pytest.raises(IntegrityFailure):
        room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)


def test_a_copy_moved_to_another_member_is_refused() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    epoch = RoomEpoch.objects.get(room=room, number=1)
    owners = SealedEpochKey.objects.get(epoch=epoch, user=owner)
    with as_insider():
        SealedEpochKey.objects.filter(epoch=epoch, user=member).update(
            sealed=owners.sealed, mac=owners.mac
        )
    clear_key_caches()

    with pytest.raises(IntegrityFailure):
        room_epoch_key_for(room_id=room.pk, number=1, user_id=member.pk)


def test_a_tampered_compliance_copy_is_refused_and_the_use_still_recorded() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    epoch = RoomEpoch.objects.get(room=room, number=1)
    with as_insider():
        copy = SealedEpochKey.objects.get(epoch=epoch, compliance_key__isnull=False)
        SealedEpochKey.objects.filter(pk=copy.pk).update(mac=bytes(32))

    with pytest.raises(IntegrityFailure):
        compliance_epoch_key(actor=owner, epoch=epoch, reason="investigation 7")

    assert AuditEvent.objects.filter(action="key.compliance.used").count() == 1
    assert [kind for kind, _ in integrity_events()] == ["epoch-copy"]


def test_sealed_copies_bind_recipient_and_key_fingerprint() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    copy = SealedEpochKey.objects.get(epoch__room=room, user=owner)
    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)  # any key: only the AAD matters

    assert copy.aad_format == SEAL_AAD_RECIPIENT
    legacy = epoch_seal_aad(room.pk, 1)
    bound = epoch_seal_aad(
        room.pk,
        1,
        recipient=f"user:{owner.pk}",
        fingerprint=private.public_key().fingerprint(),
        aad_format=SEAL_AAD_RECIPIENT,
    )
    other_recipient = epoch_seal_aad(
        room.pk,
        1,
        recipient=f"user:{owner.pk + 1}",
        fingerprint=private.public_key().fingerprint(),
        aad_format=SEAL_AAD_RECIPIENT,
    )
    assert len({legacy, bound, other_recipient}) == 3


def test_rows_made_before_macs_are_backfilled_and_keep_decrypting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given rows as they were before MACs existed: legacy associated data, no MAC
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    message = message_post(sender=member, room=room, text="from before the migration")
    epoch_key = room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)
    for copy in SealedEpochKey.objects.filter(epoch__room=room).select_related("compliance_key"):
        if copy.user_id is not None:
            public_bytes = bytes(UserKeyPair.objects.get(user_id=copy.user_id).public_key)
            purpose = KeyPurpose.USER_HPKE
        else:
            assert copy.compliance_key is not None
            public_bytes = bytes(copy.compliance_key.public_key)
            purpose = KeyPurpose.COMPLIANCE_HPKE
        public = HpkePublicKey.from_bytes(public_bytes, purpose=purpose)
        legacy = seal_key(
            public, epoch_key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=epoch_seal_aad(room.pk, 1)
        )
        SealedEpochKey.objects.filter(pk=copy.pk).update(
            sealed=legacy, aad_format=SEAL_AAD_LEGACY, mac=b""
        )
    UserKeyPair.objects.update(mac=b"")
    ComplianceKeyPair.objects.update(mac=b"")
    RecordMacKey.objects.all().delete()
    clear_key_caches()

    # when the data migration runs, asked by the operator to vouch for them once
    monkeypatch.setenv("SAFECHAT_RECORD_MAC_BACKFILL", "1")
    done = integrity.macs_backfill(
        user_keypairs=UserKeyPair,
        compliance_keypairs=ComplianceKeyPair,
        sealed_copies=SealedEpochKey,
        record_mac_keys=RecordMacKey,
    )

    # then every row carries a MAC, and everything reads and posts as before
    assert done == 2 + 1 + 3
    assert not SealedEpochKey.objects.filter(mac=b"").exists()
    assert AuditEvent.objects.filter(action="key.record.backfilled").count() == done
    assert read(message, owner.pk) == "from before the migration"
    assert read(message, member.pk) == "from before the migration"
    compliance = compliance_epoch_key(
        actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1), reason="check"
    )
    assert compliance.same_material(epoch_key)
    later = message_post(sender=owner, room=room, text="after the migration")
    assert later.epoch == 1
    assert read(later, member.pk) == "after the migration"


def test_a_deleted_record_mac_key_is_not_silently_replaced() -> None:
    owner = make_user()
    make_room(owner=owner)
    with as_insider():
        RecordMacKey.objects.all().delete()
    clear_key_caches()

    with pytest.raises(IntegrityFailure) as failure:
        integrity.record_mac_key()

    assert (failure.value.kind, failure.value.ref) == ("record-mac-key", "missing")
    assert not RecordMacKey.objects.exists()


def test_an_opened_copy_is_the_key_the_server_sealed() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    compliance = compliance_epoch_key(
        actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1), reason="check"
    )
    assert room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk).same_material(compliance)
