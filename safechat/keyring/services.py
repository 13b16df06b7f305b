"""Key services: the only code that creates, seals, opens, rotates or destroys keys.

Rooms and files call these; they never touch ``safechat.crypto`` key material
themselves. Guarantees:

* a user's private key and the compliance private key exist in the database only
  wrapped by the master key (``provider.get_provider()``);
* a room epoch key exists only sealed (HPKE, ML-KEM-768 + X25519) to each member
  who may read that epoch and to the compliance key;
* a message ciphertext is bound to its room, message uid, epoch and sender;
* writes happen inside the caller's transaction and record their audit event there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from rooms.models import Membership, Room
from safechat.crypto import (
    AdPurpose,
    DecryptionError,
    HpkeInfo,
    HpkePrivateKey,
    HpkePublicKey,
    KeyPurpose,
    MalformedError,
    SymmetricKey,
    associated_data,
    decrypt,
    encrypt,
    open_key,
    seal_key,
    unwrap_key,
    wrap_key,
)
from safechat.keyring.cache import KeyCache
from safechat.keyring.errors import IntegrityFailure, KeyUnavailableError, LegalHoldError
from safechat.keyring.models import ComplianceKeyPair, RoomEpoch, SealedEpochKey, UserKeyPair
from safechat.keyring.provider import get_provider

KEY_SYSTEM = SystemActor("keys")

# (room_id, epoch number) -> epoch key; (room_id, number, user_id) -> True once that
# user's sealed copy was opened; user_id -> private key.
_epoch_keys: KeyCache[SymmetricKey] = KeyCache()
_holders: KeyCache[bool] = KeyCache()
_private_keys: KeyCache[HpkePrivateKey] = KeyCache()


def clear_key_caches() -> None:
    """Forget every unwrapped key held by this process."""
    _epoch_keys.clear()
    _holders.clear()
    _private_keys.clear()


# --- associated data: what each ciphertext is bound to ------------------------------------


def user_private_key_aad(user_id: int) -> bytes:
    return associated_data(purpose=AdPurpose.USER_PRIVATE_KEY, user_id=user_id)


def compliance_private_key_aad(key_id: int) -> bytes:
    return associated_data(purpose=AdPurpose.COMPLIANCE_PRIVATE_KEY, key_id=key_id)


def epoch_seal_aad(room_id: int, number: int) -> bytes:
    return associated_data(purpose=AdPurpose.ROOM_EPOCH_KEY, room_id=room_id, epoch=number)


def message_aad(
    *, room_id: int, message_uid: uuid.UUID, epoch: int, sender_id: int, revision: int = 0
) -> bytes:
    return associated_data(
        purpose=AdPurpose.MESSAGE,
        room_id=room_id,
        message_id=message_uid,
        epoch=epoch,
        sender_id=sender_id,
        revision=revision,
    )


def file_key_aad(*, room_id: int, file_uid: uuid.UUID, epoch: int) -> bytes:
    return associated_data(
        purpose=AdPurpose.FILE_KEY, room_id=room_id, file_id=file_uid, epoch=epoch
    )


# --- user and compliance key pairs ---------------------------------------------------------


def user_key_create(*, user: User) -> UserKeyPair:
    """Give ``user`` an HPKE key pair, private half wrapped by the master key. Idempotent."""
    existing = UserKeyPair.objects.filter(user=user).first()
    if existing is not None:
        return existing
    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    wrapped = get_provider().wrap(private.to_bytes(), aad=user_private_key_aad(user.pk))
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the one-per-user constraint decides
                keypair = UserKeyPair.objects.create(
                    user=user,
                    public_key=private.public_key().to_bytes(),
                    wrapped_private_key=wrapped.to_bytes(),
                    kek_version=wrapped.version,
                )
        except IntegrityError:  # created at the same instant by another request: that one
            return UserKeyPair.objects.get(user=user)
        audit_record(
            actor=KEY_SYSTEM,
            action=AuditAction.KEY_USER_CREATED,
            target=user,
            extra={"kek_version": wrapped.version},
        )
    return keypair


def _user_keypairs(user_ids: Iterable[int]) -> list[UserKeyPair]:
    ids = set(user_ids)
    keypairs = list(UserKeyPair.objects.filter(user_id__in=ids))
    missing = ids - {kp.user_id for kp in keypairs}
    for user in User.objects.filter(pk__in=missing):
        keypairs.append(user_key_create(user=user))
    return keypairs


def _user_private_key(user_id: int) -> HpkePrivateKey:
    cached = _private_keys.get(user_id)
    if cached is not None:
        return cached
    keypair = UserKeyPair.objects.filter(user_id=user_id).first()
    if keypair is None:
        raise KeyUnavailableError("this user has no key pair")
    raw = get_provider().unwrap(
        bytes(keypair.wrapped_private_key), aad=user_private_key_aad(user_id)
    )
    private = HpkePrivateKey.from_bytes(raw, purpose=KeyPurpose.USER_HPKE)
    _private_keys.put(user_id, private)
    return private


def compliance_key_ensure() -> ComplianceKeyPair:
    """The organisation's active compliance key pair, created on first use."""
    active = ComplianceKeyPair.objects.filter(active=True).first()
    if active is not None:
        return active
    private = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    try:
        with transaction.atomic():
            keypair = ComplianceKeyPair.objects.create(
                public_key=private.public_key().to_bytes(),
                wrapped_private_key=b"",
                kek_version=0,
            )
            # The id is part of the wrapping's associated data, so wrap after insert.
            wrapped = get_provider().wrap(
                private.to_bytes(), aad=compliance_private_key_aad(keypair.pk)
            )
            keypair.wrapped_private_key = wrapped.to_bytes()
            keypair.kek_version = wrapped.version
            keypair.save(update_fields=["wrapped_private_key", "kek_version"])
            audit_record(
                actor=KEY_SYSTEM,
                action=AuditAction.KEY_COMPLIANCE_CREATED,
                target=keypair,
                extra={"kek_version": wrapped.version},
            )
    except IntegrityError:  # another process created it first
        return ComplianceKeyPair.objects.get(active=True)
    return keypair


def _compliance_private_key(keypair: ComplianceKeyPair) -> HpkePrivateKey:
    raw = get_provider().unwrap(
        bytes(keypair.wrapped_private_key), aad=compliance_private_key_aad(keypair.pk)
    )
    return HpkePrivateKey.from_bytes(raw, purpose=KeyPurpose.COMPLIANCE_HPKE)


# --- room epochs ---------------------------------------------------------------------------


def _seal_to(
    public_key: bytes | memoryview, purpose: KeyPurpose, key: SymmetricKey, aad: bytes
) -> bytes:
    recipient = HpkePublicKey.from_bytes(bytes(public_key), purpose=purpose)
    return seal_key(recipient, key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)


def current_epoch(*, room: Room) -> RoomEpoch | None:
    return RoomEpoch.objects.filter(room=room, shredded_at__isnull=True).order_by("-number").first()


@transaction.atomic
def room_epoch_start(
    *, room: Room, reason: str, actor: User | SystemActor = KEY_SYSTEM
) -> RoomEpoch:
    """Start the room's next epoch with a fresh key, sealed to every member and to compliance.

    Earlier epochs are untouched: their messages keep decrypting for whoever holds them.
    """
    Room.objects.select_for_update().filter(pk=room.pk).first()  # serialise numbering
    last = RoomEpoch.objects.filter(room=room).order_by("-number").first()
    number = last.number + 1 if last else 1
    epoch = RoomEpoch.objects.create(room=room, number=number, reason=reason)
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    aad = epoch_seal_aad(room.pk, number)
    member_ids = Membership.objects.filter(room=room).values_list("user_id", flat=True)
    sealed = [
        SealedEpochKey(
            epoch=epoch,
            user_id=keypair.user_id,
            sealed=_seal_to(keypair.public_key, KeyPurpose.USER_HPKE, key, aad),
        )
        for keypair in _user_keypairs(member_ids)
    ]
    compliance = compliance_key_ensure()
    sealed.append(
        SealedEpochKey(
            epoch=epoch,
            compliance_key=compliance,
            sealed=_seal_to(compliance.public_key, KeyPurpose.COMPLIANCE_HPKE, key, aad),
        )
    )
    SealedEpochKey.objects.bulk_create(sealed)
    audit_record(
        actor=actor,
        action=AuditAction.KEY_EPOCH_CREATED,
        target=room,
        extra={"epoch": number, "reason": reason, "recipients": len(sealed)},
    )
    # Only a committed epoch may be served from the cache.
    transaction.on_commit(lambda: _epoch_keys.put((room.pk, number), key))
    return epoch


def _open_epoch_key_as_custodian(epoch: RoomEpoch) -> SymmetricKey:
    """Open an epoch key through any current holder's copy, to re-seal it to a new member.

    The server is the custodian of every wrapped key; this is how keys follow
    membership without a member being online. Falls back to the compliance copy,
    which is audited like every compliance-key use.
    """
    cached = _epoch_keys.get((epoch.room_id, epoch.number))
    if cached is not None:
        return cached
    aad = epoch_seal_aad(epoch.room_id, epoch.number)
    holder = SealedEpochKey.objects.filter(epoch=epoch, user__isnull=False).first()
    if holder is not None and holder.user_id is not None:
        key = open_key(
            _user_private_key(holder.user_id),
            bytes(holder.sealed),
            info=HpkeInfo.ROOM_EPOCH_KEY,
            aad=aad,
            purpose=KeyPurpose.ROOM_EPOCH,
        )
    else:
        key = compliance_epoch_key(actor=KEY_SYSTEM, epoch=epoch, reason="re-seal to new member")
    _epoch_keys.put((epoch.room_id, epoch.number), key)
    return key


def room_keys_grant(*, room: Room, user: User) -> int:
    """Seal the room's readable epochs to a new member; returns how many were sealed.

    The current epoch always; earlier ones only if the room shows history to newcomers.
    Call inside the transaction that creates the membership.
    """
    epochs = RoomEpoch.objects.filter(room=room, shredded_at__isnull=True).order_by("number")
    if not room.history_visible:
        latest = epochs.last()
        epochs_to_grant = [latest] if latest else []
    else:
        epochs_to_grant = list(epochs)
    if not epochs_to_grant:
        return 0
    (keypair,) = _user_keypairs([user.pk])
    already = set(
        SealedEpochKey.objects.filter(epoch__in=epochs_to_grant, user=user).values_list(
            "epoch_id", flat=True
        )
    )
    sealed = [
        SealedEpochKey(
            epoch=epoch,
            user=user,
            sealed=_seal_to(
                keypair.public_key,
                KeyPurpose.USER_HPKE,
                _open_epoch_key_as_custodian(epoch),
                epoch_seal_aad(room.pk, epoch.number),
            ),
        )
        for epoch in epochs_to_grant
        if epoch.pk not in already
    ]
    SealedEpochKey.objects.bulk_create(sealed)
    return len(sealed)


def room_keys_revoke(*, room: Room, user: User) -> int:
    """Delete every sealed copy of this room's epoch keys held by ``user``.

    The caller then starts a new epoch, so nothing posted afterwards is readable
    with any key the user might have kept.
    """
    deleted, _ = SealedEpochKey.objects.filter(epoch__room=room, user=user).delete()
    _holders.discard_where(lambda k: isinstance(k, tuple) and k[0] == room.pk and k[2] == user.pk)
    return deleted


def _epoch_key_opened_for(*, room_id: int, number: int, user_id: int) -> SymmetricKey | None:
    """The epoch key if this process recently opened it with ``user_id``'s own copy."""
    key = _epoch_keys.get((room_id, number))
    if key is not None and _holders.get((room_id, number, user_id)):
        return key
    return None


def room_epoch_key_for(*, room_id: int, number: int, user_id: int) -> SymmetricKey:
    """The epoch key, opened with ``user_id``'s own sealed copy (or raise KeyUnavailable)."""
    key = _epoch_key_opened_for(room_id=room_id, number=number, user_id=user_id)
    if key is not None:
        return key
    sealed = (
        SealedEpochKey.objects.filter(epoch__room_id=room_id, epoch__number=number, user_id=user_id)
        .values_list("sealed", flat=True)
        .first()
    )
    if sealed is None:
        raise KeyUnavailableError("no key for this epoch")
    try:
        key = open_key(
            _user_private_key(user_id),
            bytes(sealed),
            info=HpkeInfo.ROOM_EPOCH_KEY,
            aad=epoch_seal_aad(room_id, number),
            purpose=KeyPurpose.ROOM_EPOCH,
        )
    except (DecryptionError, MalformedError) as exc:  # the stored copy is not what we sealed
        raise IntegrityFailure(
            kind="epoch-copy", ref=f"room {room_id} epoch {number} user {user_id}"
        ) from exc
    _epoch_keys.put((room_id, number), key)
    _holders.put((room_id, number, user_id), True)
    return key


def compliance_epoch_key(
    *, actor: User | SystemActor, epoch: RoomEpoch, reason: str
) -> SymmetricKey:
    """Open an epoch key with the compliance key. Every call is an audit event."""
    copy = (
        SealedEpochKey.objects.filter(epoch=epoch, compliance_key__isnull=False)
        .select_related("compliance_key")
        .first()
    )
    if copy is None or copy.compliance_key is None:
        raise KeyUnavailableError("no compliance copy of this epoch key")
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.KEY_COMPLIANCE_USED,
            target=epoch.room,
            extra={"epoch": epoch.number, "reason": reason[:200]},
        )
    return open_key(
        _compliance_private_key(copy.compliance_key),
        bytes(copy.sealed),
        info=HpkeInfo.ROOM_EPOCH_KEY,
        aad=epoch_seal_aad(epoch.room_id, epoch.number),
        purpose=KeyPurpose.ROOM_EPOCH,
    )


def epoch_needs_rotation(epoch: RoomEpoch) -> bool:
    too_old = epoch.created_at <= timezone.now() - timedelta(
        days=settings.SAFECHAT_EPOCH_MAX_AGE_DAYS
    )
    return too_old or epoch.message_count >= settings.SAFECHAT_EPOCH_MAX_MESSAGES


@transaction.atomic
def room_epoch_shred(*, actor: User | SystemActor, epoch: RoomEpoch) -> None:
    """Destroy every sealed copy of an epoch key: its messages and files become unreadable.

    Refused while the room is under legal hold.
    """
    room = Room.objects.select_for_update().get(pk=epoch.room_id)
    if room.legal_hold:
        raise LegalHoldError("the room is under legal hold; its keys cannot be destroyed")
    copies, _ = SealedEpochKey.objects.filter(epoch=epoch).delete()
    RoomEpoch.objects.filter(pk=epoch.pk).update(shredded_at=timezone.now())
    audit_record(
        actor=actor,
        action=AuditAction.KEY_EPOCH_SHREDDED,
        target=room,
        extra={"epoch": epoch.number, "copies_destroyed": copies},
    )
    key = (room.pk, epoch.number)
    _epoch_keys.discard_where(lambda k: k == key)
    _holders.discard_where(lambda k: isinstance(k, tuple) and k[:2] == key)


# --- messages and files --------------------------------------------------------------------


def message_encrypt(
    *, room: Room, sender: User, message_uid: uuid.UUID, plaintext: str, revision: int = 0
) -> tuple[int, bytes]:
    """Encrypt a new message under the room's current epoch; returns (epoch, ciphertext).

    Call inside the transaction that stores the message, holding the room's row lock
    (``select_for_update``), as ``room_epoch_start`` does: so no message is encrypted
    under an epoch that a committed removal has already replaced. Starts a new epoch
    first if the current one reached its cryptoperiod (age or message count).
    """
    epoch = current_epoch(room=room)
    if epoch is None or epoch_needs_rotation(epoch):
        reason = RoomEpoch.Reason.CREATED if epoch is None else RoomEpoch.Reason.CRYPTOPERIOD
        epoch = room_epoch_start(room=room, reason=reason)
    key = room_epoch_key_for(room_id=room.pk, number=epoch.number, user_id=sender.pk)
    RoomEpoch.objects.filter(pk=epoch.pk).update(message_count=F("message_count") + 1)
    aad = message_aad(
        room_id=room.pk,
        message_uid=message_uid,
        epoch=epoch.number,
        sender_id=sender.pk,
        revision=revision,
    )
    return epoch.number, encrypt(key, plaintext.encode("utf-8"), aad=aad)


def message_decrypt(
    *,
    reader_id: int,
    room_id: int,
    message_uid: uuid.UUID,
    epoch: int,
    sender_id: int,
    ciphertext: bytes,
    revision: int = 0,
) -> str:
    """Decrypt a message (or one of its revisions) with ``reader_id``'s own epoch key copy."""
    key = room_epoch_key_for(room_id=room_id, number=epoch, user_id=reader_id)
    return _message_open(key, room_id, message_uid, epoch, sender_id, ciphertext, revision)


def message_decrypt_if_cached(
    *,
    reader_id: int,
    room_id: int,
    message_uid: uuid.UUID,
    epoch: int,
    sender_id: int,
    ciphertext: bytes,
    revision: int = 0,
) -> str | None:
    """``message_decrypt`` without touching the database: None unless this process holds
    the epoch key already opened with ``reader_id``'s own copy. Safe on an event loop.
    """
    key = _epoch_key_opened_for(room_id=room_id, number=epoch, user_id=reader_id)
    if key is None:
        return None
    return _message_open(key, room_id, message_uid, epoch, sender_id, ciphertext, revision)


def _message_open(
    key: SymmetricKey,
    room_id: int,
    message_uid: uuid.UUID,
    epoch: int,
    sender_id: int,
    ciphertext: bytes,
    revision: int,
) -> str:
    aad = message_aad(
        room_id=room_id,
        message_uid=message_uid,
        epoch=epoch,
        sender_id=sender_id,
        revision=revision,
    )
    try:
        return decrypt(key, bytes(ciphertext), aad=aad).decode("utf-8")
    except (DecryptionError, MalformedError, UnicodeDecodeError) as exc:
        raise IntegrityFailure(
            kind="message", ref=f"room {room_id} message {message_uid} revision {revision}"
        ) from exc


def file_key_wrap(
    *, room: Room, owner: User, file_uid: uuid.UUID, file_key: SymmetricKey
) -> tuple[int, bytes]:
    """Wrap a file's own key under the room's current epoch key; returns (epoch, wrapped)."""
    epoch = current_epoch(room=room)
    if epoch is None:
        epoch = room_epoch_start(room=room, reason=RoomEpoch.Reason.CREATED)
    key = room_epoch_key_for(room_id=room.pk, number=epoch.number, user_id=owner.pk)
    aad = file_key_aad(room_id=room.pk, file_uid=file_uid, epoch=epoch.number)
    return epoch.number, wrap_key(key, file_key, aad=aad)


def file_key_unwrap(
    *, room_id: int, reader_id: int, file_uid: uuid.UUID, epoch: int, wrapped: bytes
) -> SymmetricKey:
    """Unwrap a file key for ``reader_id`` with their own copy of the epoch key."""
    key = room_epoch_key_for(room_id=room_id, number=epoch, user_id=reader_id)
    aad = file_key_aad(room_id=room_id, file_uid=file_uid, epoch=epoch)
    return unwrap_key(key, bytes(wrapped), aad=aad, purpose=KeyPurpose.FILE)
