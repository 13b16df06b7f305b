"""Key services: the only code that creates, seals, opens, rotates or destroys keys.

Rooms and files call these; they never touch ``safechat.crypto`` key material
themselves. The keyring knows a room only by its id and its epochs: which epoch is
current, who may hold its key, and when it rotates or is shredded are the rooms app's
rules (``rooms.services.epochs``), which call down into these functions; nothing here
imports an app above the keyring. Guarantees:

* a user's private key and the compliance private key exist in the database only
  wrapped by the master key (``provider.get_provider()``);
* a room epoch key exists only sealed (HPKE, ML-KEM-768 + X25519) to each member
  who may read that epoch and to the compliance key;
* nothing read back from the database is used unless the master key vouches for it:
  public keys and sealed copies carry a MAC under the record-MAC key
  (``safechat.keyring.integrity``); a mismatch raises ``IntegrityFailure`` (audited);
* a message ciphertext is bound to its room, message uid, epoch and sender;
* writes happen inside the caller's transaction and record their audit event there;
  caches are changed only after commit, in every process (``safechat.keyring.events``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record, audit_record_surviving_rollback
from audit.services.record import Target
from safechat.crypto import (
    AdPurpose,
    CryptoError,
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
from safechat.keyring import events, integrity
from safechat.keyring.cache import KeyCache
from safechat.keyring.errors import IntegrityFailure, KeyUnavailableError
from safechat.keyring.integrity import compliance_recipient, user_recipient
from safechat.keyring.models import ComplianceKeyPair, RoomEpoch, SealedEpochKey, UserKeyPair
from safechat.keyring.provider import get_provider

KEY_SYSTEM = SystemActor("keys")

# Associated-data formats of sealed copies (SealedEpochKey.aad_format).
SEAL_AAD_LEGACY = 1  # room, epoch
SEAL_AAD_RECIPIENT = 2  # room, epoch, recipient, recipient key fingerprint

# (room_id, epoch number) -> epoch key; (room_id, number, user_id) -> True once that
# user's sealed copy was opened; user_id -> private key.
_epoch_keys: KeyCache[SymmetricKey] = KeyCache("epoch_keys")
_holders: KeyCache[bool] = KeyCache("holders")
_private_keys: KeyCache[HpkePrivateKey] = KeyCache("private_keys")


def clear_key_caches() -> None:
    """Forget every unwrapped key held by this process."""
    _epoch_keys.clear()
    _holders.clear()
    _private_keys.clear()
    integrity.forget_record_mac_key()


def forget_epoch(*, room_id: int, number: int) -> None:
    """Drop one epoch's key from this process (after a shred)."""
    _epoch_keys.discard_where(lambda k: k == (room_id, number))
    _holders.discard_where(lambda k: isinstance(k, tuple) and k[:2] == (room_id, number))


def forget_holder(*, room_id: int, user_id: int) -> None:
    """Forget that ``user_id`` opened this room's keys here (after their removal)."""
    _holders.discard_where(lambda k: isinstance(k, tuple) and k[0] == room_id and k[2] == user_id)


events.on_epoch_shredded(forget_epoch)
events.on_member_revoked(forget_holder)
events.on_everything_stale(clear_key_caches)


# --- associated data: what each ciphertext is bound to ------------------------------------


def user_private_key_aad(user_id: int) -> bytes:
    return associated_data(purpose=AdPurpose.USER_PRIVATE_KEY, user_id=user_id)


def compliance_private_key_aad(key_id: int) -> bytes:
    return associated_data(purpose=AdPurpose.COMPLIANCE_PRIVATE_KEY, key_id=key_id)


def epoch_seal_aad(
    room_id: int,
    number: int,
    *,
    recipient: str = "",
    fingerprint: str = "",
    aad_format: int = SEAL_AAD_LEGACY,
) -> bytes:
    """A sealed copy's associated data: room and epoch; since format 2 also the recipient
    (``user:<id>`` or ``compliance:<id>``) and the fingerprint of the key it is sealed to."""
    if aad_format == SEAL_AAD_LEGACY:
        return associated_data(purpose=AdPurpose.ROOM_EPOCH_KEY, room_id=room_id, epoch=number)
    if aad_format != SEAL_AAD_RECIPIENT:
        raise ValueError(f"unknown sealed-copy format {aad_format}")
    return associated_data(
        purpose=AdPurpose.ROOM_EPOCH_KEY,
        room_id=room_id,
        epoch=number,
        recipient=recipient,
        key=fingerprint,
    )


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


def user_key_create(*, user: AbstractBaseUser) -> UserKeyPair:
    """Give ``user`` an HPKE key pair, private half wrapped by the master key. Idempotent."""
    existing = UserKeyPair.objects.filter(user_id=user.pk).first()
    if existing is not None:
        return existing
    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    public = private.public_key().to_bytes()
    wrapped = get_provider().wrap(private.to_bytes(), aad=user_private_key_aad(user.pk))
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the one-per-user constraint decides
                keypair = UserKeyPair.objects.create(
                    user_id=user.pk,
                    public_key=public,
                    wrapped_private_key=wrapped.to_bytes(),
                    kek_version=wrapped.version,
                    mac=integrity.user_public_key_mac(user.pk, public),
                )
        except IntegrityError:  # created at the same instant by another request: that one
            return UserKeyPair.objects.get(user_id=user.pk)
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
    for user in get_user_model().objects.filter(pk__in=missing):
        keypairs.append(user_key_create(user=user))
    return keypairs


def _user_public_key(keypair: UserKeyPair) -> HpkePublicKey:
    """The user's public key, once the record-MAC key vouched for it."""
    public = bytes(keypair.public_key)
    integrity.user_public_key_verify(keypair.user_id, public, bytes(keypair.mac))
    return HpkePublicKey.from_bytes(public, purpose=KeyPurpose.USER_HPKE)


def user_public_key(*, user_id: int) -> HpkePublicKey:
    """``user_id``'s HPKE public key (created on first use), once the record-MAC key vouched
    for it; raises IntegrityFailure (audited) for a key the server did not store."""
    (keypair,) = _user_keypairs([user_id])
    return _user_public_key(keypair)


def export_key_open_for_user(*, user_id: int, sealed: bytes, aad: bytes) -> SymmetricKey:
    """Open an eDiscovery archive's key sealed (HPKE, ``info`` COMPLIANCE_EXPORT_KEY) to
    ``user_id``'s own key pair; raises CryptoError when it is not sealed to them with
    this associated data. Only for the archive's own requester (the caller's rule)."""
    return open_key(
        _user_private_key(user_id),
        sealed,
        info=HpkeInfo.COMPLIANCE_EXPORT_KEY,
        aad=aad,
        purpose=KeyPurpose.FILE,
    )


def _compliance_public_key(keypair: ComplianceKeyPair) -> HpkePublicKey:
    public = bytes(keypair.public_key)
    integrity.compliance_public_key_verify(keypair.pk, public, bytes(keypair.mac))
    return HpkePublicKey.from_bytes(public, purpose=KeyPurpose.COMPLIANCE_HPKE)


def _unwrap_private(
    wrapped: bytes, *, aad: bytes, purpose: KeyPurpose, public: bytes, ref: str
) -> HpkePrivateKey:
    """Unwrap a private key and check it belongs to the public key stored beside it."""
    try:
        raw = get_provider().unwrap(wrapped, aad=aad)
    except DecryptionError:
        raise integrity.integrity_failure(kind="private-key", ref=ref) from None
    private = HpkePrivateKey.from_bytes(raw, purpose=purpose)
    if private.public_key().to_bytes() != public:
        raise integrity.integrity_failure(kind="public-key", ref=ref)
    return private


def _user_private_key(user_id: int) -> HpkePrivateKey:
    cached = _private_keys.get(user_id)
    if cached is not None:
        return cached
    keypair = UserKeyPair.objects.filter(user_id=user_id).first()
    if keypair is None:
        raise KeyUnavailableError("this user has no key pair")
    private = _unwrap_private(
        bytes(keypair.wrapped_private_key),
        aad=user_private_key_aad(user_id),
        purpose=KeyPurpose.USER_HPKE,
        public=bytes(keypair.public_key),
        ref=user_recipient(user_id),
    )
    _private_keys.put(user_id, private)
    return private


def compliance_key_ensure() -> ComplianceKeyPair:
    """The organisation's active compliance key pair, created on first use."""
    active = ComplianceKeyPair.objects.filter(active=True).first()
    if active is not None:
        return active
    private = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    public = private.public_key().to_bytes()
    try:
        with transaction.atomic():
            keypair = ComplianceKeyPair.objects.create(
                public_key=public, wrapped_private_key=b"", kek_version=0
            )
            # The id is part of the wrapping's associated data and the MAC: after insert.
            wrapped = get_provider().wrap(
                private.to_bytes(), aad=compliance_private_key_aad(keypair.pk)
            )
            keypair.wrapped_private_key = wrapped.to_bytes()
            keypair.kek_version = wrapped.version
            keypair.mac = integrity.compliance_public_key_mac(keypair.pk, public)
            keypair.save(update_fields=["wrapped_private_key", "kek_version", "mac"])
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
    return _unwrap_private(
        bytes(keypair.wrapped_private_key),
        aad=compliance_private_key_aad(keypair.pk),
        purpose=KeyPurpose.COMPLIANCE_HPKE,
        public=bytes(keypair.public_key),
        ref=compliance_recipient(keypair.pk),
    )


# --- sealed copies -------------------------------------------------------------------------


def _sealed_copy(
    *,
    epoch: RoomEpoch,
    key: SymmetricKey,
    public: HpkePublicKey,
    recipient: str,
    user_id: int | None = None,
    compliance: ComplianceKeyPair | None = None,
) -> SealedEpochKey:
    """Seal ``key`` to a (verified) public key, bound to its recipient, and MAC the copy."""
    fingerprint = public.fingerprint()
    aad = epoch_seal_aad(
        epoch.room_id,
        epoch.number,
        recipient=recipient,
        fingerprint=fingerprint,
        aad_format=SEAL_AAD_RECIPIENT,
    )
    sealed = seal_key(public, key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad)
    mac = integrity.sealed_copy_mac(
        room_id=epoch.room_id,
        number=epoch.number,
        recipient=recipient,
        fingerprint=fingerprint,
        aad_format=SEAL_AAD_RECIPIENT,
        sealed=sealed,
    )
    return SealedEpochKey(
        epoch=epoch,
        user_id=user_id,
        compliance_key=compliance,
        sealed=sealed,
        aad_format=SEAL_AAD_RECIPIENT,
        mac=mac,
    )


def _open_copy(
    *,
    room_id: int,
    number: int,
    recipient: str,
    private: HpkePrivateKey,
    sealed: bytes,
    aad_format: int,
    mac: bytes,
) -> SymmetricKey:
    """Open a sealed copy only if the record-MAC key vouches for it and its recipient."""
    fingerprint = private.public_key().fingerprint()
    integrity.sealed_copy_verify(
        room_id=room_id,
        number=number,
        recipient=recipient,
        fingerprint=fingerprint,
        aad_format=aad_format,
        sealed=sealed,
        mac=mac,
    )
    aad = epoch_seal_aad(
        room_id, number, recipient=recipient, fingerprint=fingerprint, aad_format=aad_format
    )
    try:
        return open_key(
            private, sealed, info=HpkeInfo.ROOM_EPOCH_KEY, aad=aad, purpose=KeyPurpose.ROOM_EPOCH
        )
    except CryptoError:
        raise integrity.integrity_failure(
            kind="epoch-copy", ref=f"room {room_id} epoch {number} {recipient}"
        ) from None


# --- room epochs: the keys; which epoch and who may hold it is the rooms app's rule ----------


def epoch_key_issue(*, epoch: RoomEpoch, user_ids: Iterable[int]) -> int:
    """Give a new epoch a fresh key, sealed to each of ``user_ids`` and to compliance.

    Returns how many sealed copies were stored (compliance included). Users without a
    key pair get one first. Call inside the transaction that created ``epoch``; the key
    is cached in this process only once that transaction commits.
    """
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    sealed = [
        _sealed_copy(
            epoch=epoch,
            key=key,
            public=_user_public_key(keypair),
            recipient=user_recipient(keypair.user_id),
            user_id=keypair.user_id,
        )
        for keypair in _user_keypairs(user_ids)
    ]
    compliance = compliance_key_ensure()
    sealed.append(
        _sealed_copy(
            epoch=epoch,
            key=key,
            public=_compliance_public_key(compliance),
            recipient=compliance_recipient(compliance.pk),
            compliance=compliance,
        )
    )
    SealedEpochKey.objects.bulk_create(sealed)
    room_id, number = epoch.room_id, epoch.number
    # Only a committed epoch may be served from the cache.
    transaction.on_commit(lambda: _epoch_keys.put((room_id, number), key))
    return len(sealed)


def _open_epoch_key_as_custodian(epoch: RoomEpoch) -> SymmetricKey:
    """Open an epoch key through any current holder's copy, to re-seal it to a new member.

    The server is the custodian of every wrapped key; this is how keys follow
    membership without a member being online. Falls back to the compliance copy,
    which is audited like every compliance-key use.
    """
    cached = _epoch_keys.get((epoch.room_id, epoch.number))
    if cached is not None:
        return cached
    holder = SealedEpochKey.objects.filter(epoch=epoch, user__isnull=False).first()
    if holder is not None and holder.user_id is not None:
        key = _open_copy(
            room_id=epoch.room_id,
            number=epoch.number,
            recipient=user_recipient(holder.user_id),
            private=_user_private_key(holder.user_id),
            sealed=bytes(holder.sealed),
            aad_format=holder.aad_format,
            mac=bytes(holder.mac),
        )
    else:
        key = compliance_epoch_key(actor=KEY_SYSTEM, epoch=epoch, reason="re-seal to new member")
    # Cached only if the work that opened it commits.
    transaction.on_commit(lambda: _epoch_keys.put((epoch.room_id, epoch.number), key))
    return key


def epoch_keys_grant(*, epochs: Sequence[RoomEpoch], user_id: int) -> int:
    """Seal the keys of ``epochs`` to ``user_id``; returns how many copies were added.

    Epochs the user already holds are skipped. Each key is opened as the server, the
    custodian of every wrapped key (a holder's copy, else the audited compliance copy).
    Call inside the transaction that gives the user the right to read them.
    """
    if not epochs:
        return 0
    (keypair,) = _user_keypairs([user_id])
    public = _user_public_key(keypair)
    already = set(
        SealedEpochKey.objects.filter(epoch__in=epochs, user_id=user_id).values_list(
            "epoch_id", flat=True
        )
    )
    sealed = [
        _sealed_copy(
            epoch=epoch,
            key=_open_epoch_key_as_custodian(epoch),
            public=public,
            recipient=user_recipient(user_id),
            user_id=user_id,
        )
        for epoch in epochs
        if epoch.pk not in already
    ]
    SealedEpochKey.objects.bulk_create(sealed)
    return len(sealed)


def epoch_keys_revoke(*, room_id: int, user_id: int) -> int:
    """Delete every sealed copy of this room's epoch keys held by ``user_id``.

    Returns how many were deleted. Every process forgets that the user opened these
    keys, after commit.
    """
    deleted, _ = SealedEpochKey.objects.filter(epoch__room_id=room_id, user_id=user_id).delete()
    events.member_revoked(room_id=room_id, user_id=user_id)
    return deleted


def epoch_key_destroy(*, epoch: RoomEpoch) -> int:
    """Destroy every sealed copy of an epoch key and mark the epoch shredded.

    Returns how many copies were destroyed. After commit every process drops the key.
    Whether the epoch may be destroyed (a legal hold) is the caller's rule, checked under
    the room's lock.
    """
    copies, _ = SealedEpochKey.objects.filter(epoch=epoch).delete()
    RoomEpoch.objects.filter(pk=epoch.pk).update(shredded_at=timezone.now())
    events.epoch_shredded(room_id=epoch.room_id, number=epoch.number)
    return copies


def _epoch_key_opened_for(*, room_id: int, number: int, user_id: int) -> SymmetricKey | None:
    """The epoch key if this process recently opened it with ``user_id``'s own copy."""
    key = _epoch_keys.get((room_id, number))
    if key is not None and _holders.get((room_id, number, user_id)):
        return key
    return None


def room_epoch_key_for(*, room_id: int, number: int, user_id: int) -> SymmetricKey:
    """The epoch key, opened with ``user_id``'s own sealed copy (or raise KeyUnavailable).

    Raises IntegrityFailure (audited) if that copy is not one the server sealed.
    """
    key = _epoch_key_opened_for(room_id=room_id, number=number, user_id=user_id)
    if key is not None:
        return key
    copy = (
        SealedEpochKey.objects.filter(epoch__room_id=room_id, epoch__number=number, user_id=user_id)
        .values_list("sealed", "aad_format", "mac")
        .first()
    )
    if copy is None:
        raise KeyUnavailableError("no key for this epoch")
    sealed, aad_format, mac = copy
    key = _open_copy(
        room_id=room_id,
        number=number,
        recipient=user_recipient(user_id),
        private=_user_private_key(user_id),
        sealed=bytes(sealed),
        aad_format=aad_format,
        mac=bytes(mac),
    )
    _epoch_keys.put((room_id, number), key)
    _holders.put((room_id, number, user_id), True)
    return key


def compliance_epoch_key(
    *, actor: AbstractBaseUser | SystemActor, epoch: RoomEpoch, reason: str
) -> SymmetricKey:
    """Open an epoch key with the compliance key. Every call is an audit event.

    The event is recorded before the key is opened and survives the caller's rollback
    (``audit_record_surviving_rollback``): a use is never lost.
    """
    copy = (
        SealedEpochKey.objects.filter(epoch=epoch, compliance_key__isnull=False)
        .select_related("compliance_key")
        .first()
    )
    if copy is None or copy.compliance_key is None:
        raise KeyUnavailableError("no compliance copy of this epoch key")
    audit_record_surviving_rollback(
        actor=actor,
        action=AuditAction.KEY_COMPLIANCE_USED,
        target=epoch.room,
        extra={"epoch": epoch.number, "reason": reason[:200]},
    )
    return _open_copy(
        room_id=epoch.room_id,
        number=epoch.number,
        recipient=compliance_recipient(copy.compliance_key.pk),
        private=_compliance_private_key(copy.compliance_key),
        sealed=bytes(copy.sealed),
        aad_format=copy.aad_format,
        mac=bytes(copy.mac),
    )


def compliance_epoch_keys(
    *,
    actor: AbstractBaseUser | SystemActor,
    epochs: Sequence[tuple[int, int]],
    action: AuditAction,
    target: Target,
    extra: dict[str, object],
) -> dict[tuple[int, int], SymmetricKey | IntegrityFailure | None]:
    """Open the keys of ``epochs`` ((room id, epoch number) pairs) with the compliance key,
    on the record as ONE audit event of the caller's ``action`` naming what is read.

    The event (``extra`` plus the ``epochs`` opened, ascending) is recorded before any key
    is opened and survives the caller's rollback, as ``compliance_epoch_key``'s does: a
    read of many epochs (a page of a compliance review) is one use, not one per epoch.
    Returns each pair's key, None when there is no compliance copy (shredded), or the
    ``IntegrityFailure`` met when the copy or the compliance private key fails its check
    (reported and audited once per process: ``key.integrity.failed``): one bad copy
    never fails the others.
    """
    wanted = sorted(set(epochs))
    audit_record_surviving_rollback(
        actor=actor,
        action=action,
        target=target,
        extra={**extra, "epochs": [list(pair) for pair in wanted]},
    )
    keys: dict[tuple[int, int], SymmetricKey | IntegrityFailure | None] = dict.fromkeys(wanted)
    if not wanted:
        return keys
    which = Q()
    for room_id, number in wanted:
        which |= Q(epoch__room_id=room_id, epoch__number=number)
    copies = (
        SealedEpochKey.objects.filter(which, compliance_key__isnull=False)
        .select_related("compliance_key", "epoch")
        .order_by("epoch__room_id", "epoch__number", "pk")
    )
    private_keys: dict[int, HpkePrivateKey | IntegrityFailure] = {}
    for copy in copies.iterator(chunk_size=200):
        pair = (copy.epoch.room_id, copy.epoch.number)
        if pair not in keys or keys[pair] is not None or copy.compliance_key is None:
            continue
        keypair = copy.compliance_key
        if keypair.pk not in private_keys:
            try:
                private_keys[keypair.pk] = _compliance_private_key(keypair)
            except IntegrityFailure as failure:
                private_keys[keypair.pk] = failure
        private = private_keys[keypair.pk]
        if isinstance(private, IntegrityFailure):
            keys[pair] = private
            continue
        try:
            keys[pair] = _open_copy(
                room_id=pair[0],
                number=pair[1],
                recipient=compliance_recipient(keypair.pk),
                private=private,
                sealed=bytes(copy.sealed),
                aad_format=copy.aad_format,
                mac=bytes(copy.mac),
            )
        except IntegrityFailure as failure:
            keys[pair] = failure
    return keys


def message_decrypt_with_key(
    *,
    key: SymmetricKey,
    room_id: int,
    message_uid: uuid.UUID,
    epoch: int,
    sender_id: int,
    ciphertext: bytes,
    revision: int = 0,
) -> str:
    """Decrypt a message (or revision) with an epoch key opened by ``compliance_epoch_keys``.

    Raises IntegrityFailure (reported and audited once per process) when the ciphertext
    is not this message's under this key (AES-256-GCM authentication fails).
    """
    return _message_open(
        key, room_id, message_uid, epoch, sender_id, ciphertext, revision, report=True
    )


def file_key_unwrap_with_key(
    *, key: SymmetricKey, room_id: int, file_uid: uuid.UUID, epoch: int, wrapped: bytes
) -> SymmetricKey:
    """Unwrap a file's own key with an epoch key opened by ``compliance_epoch_keys``.

    Raises CryptoError when the wrapped key is not this file's under this epoch.
    """
    aad = file_key_aad(room_id=room_id, file_uid=file_uid, epoch=epoch)
    return unwrap_key(key, bytes(wrapped), aad=aad, purpose=KeyPurpose.FILE)


# --- messages and files --------------------------------------------------------------------


def message_encrypt_in_epoch(
    *,
    room_id: int,
    epoch: int,
    sender_id: int,
    message_uid: uuid.UUID,
    plaintext: str,
    revision: int = 0,
) -> bytes:
    """Encrypt a message under epoch ``epoch`` with ``sender_id``'s own copy of its key.

    The ciphertext is bound to the room, message uid, epoch, sender and revision. Which
    epoch encrypts new content is the room's rule (``rooms.services.epochs``).
    """
    key = room_epoch_key_for(room_id=room_id, number=epoch, user_id=sender_id)
    aad = message_aad(
        room_id=room_id,
        message_uid=message_uid,
        epoch=epoch,
        sender_id=sender_id,
        revision=revision,
    )
    return encrypt(key, plaintext.encode("utf-8"), aad=aad)


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
    return _message_open(
        key, room_id, message_uid, epoch, sender_id, ciphertext, revision, report=True
    )


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
    return _message_open(
        key, room_id, message_uid, epoch, sender_id, ciphertext, revision, report=False
    )


def _message_open(
    key: SymmetricKey,
    room_id: int,
    message_uid: uuid.UUID,
    epoch: int,
    sender_id: int,
    ciphertext: bytes,
    revision: int,
    *,
    report: bool,
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
    except (DecryptionError, MalformedError, UnicodeDecodeError):
        ref = f"room {room_id} message {message_uid} revision {revision}"
        if not report:  # on an event loop: the caller opens it again where it may report
            raise IntegrityFailure(kind="message", ref=ref) from None
        raise integrity.integrity_failure(kind="message", ref=ref) from None


def file_key_wrap_in_epoch(
    *, room_id: int, epoch: int, owner_id: int, file_uid: uuid.UUID, file_key: SymmetricKey
) -> bytes:
    """Wrap a file's own key under epoch ``epoch`` with ``owner_id``'s copy of its key."""
    key = room_epoch_key_for(room_id=room_id, number=epoch, user_id=owner_id)
    aad = file_key_aad(room_id=room_id, file_uid=file_uid, epoch=epoch)
    return wrap_key(key, file_key, aad=aad)


def file_key_unwrap(
    *, room_id: int, reader_id: int, file_uid: uuid.UUID, epoch: int, wrapped: bytes
) -> SymmetricKey:
    """Unwrap a file key for ``reader_id`` with their own copy of the epoch key."""
    key = room_epoch_key_for(room_id=room_id, number=epoch, user_id=reader_id)
    aad = file_key_aad(room_id=room_id, file_uid=file_uid, epoch=epoch)
    return unwrap_key(key, bytes(wrapped), aad=aad, purpose=KeyPurpose.FILE)
