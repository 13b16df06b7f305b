"""Key records vouched for by the master key: nothing read back from the database is trusted
on the database's word.

HPKE base mode lets anyone seal to any public key, and a public key is just bytes in a row.
Someone who can write the database but holds no master key could otherwise swap the
compliance public key for their own, or re-seal each member's copy of an epoch to a key they
chose, and read everything posted afterwards. So every public key (user and compliance) and
every sealed epoch-key copy carries an HMAC-SHA256 (``safechat.crypto.mac``) under the
**record-MAC key**: a random key stored only wrapped by the master key (``RecordMacKey``,
one row), re-wrapped with everything else at master-key rotation. A record whose MAC does
not verify raises :class:`IntegrityFailure`, is logged and audited (``key.integrity.failed``,
surviving the caller's rollback), and is never used.

What the MACs bind:

* user public key: user id, public key bytes;
* compliance public key: key id, public key bytes;
* sealed copy: room id, epoch number, recipient (``user:<id>`` / ``compliance:<id>``), the
  fingerprint of the recipient's public key, the associated-data format and the sealed bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any

from django.db import IntegrityError, transaction

from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record_surviving_rollback
from safechat.crypto import (
    AdPurpose,
    DecryptionError,
    KeyPurpose,
    MacError,
    MacLabel,
    SymmetricKey,
    associated_data,
    record_mac,
    record_mac_verify,
)
from safechat.keyring.errors import BackfillRefused, IntegrityFailure
from safechat.keyring.provider import get_provider

logger = logging.getLogger(__name__)

INTEGRITY_SYSTEM = SystemActor("keys")
RECORD_MAC_KEY_ID = 1
_REPORTED_KEPT = 10_000

_lock = threading.Lock()
_mac_key: SymmetricKey | None = None
_reported: set[tuple[str, str]] = set()


def record_mac_key_aad(key_id: int = RECORD_MAC_KEY_ID) -> bytes:
    return associated_data(purpose=AdPurpose.RECORD_MAC_KEY, key_id=key_id)


def user_recipient(user_id: int) -> str:
    return f"user:{user_id}"


def compliance_recipient(key_id: int) -> str:
    return f"compliance:{key_id}"


def _user_public_message(user_id: int, public_key: bytes) -> bytes:
    return associated_data(purpose="user-public-key", user_id=user_id, public_key=public_key)


def _compliance_public_message(key_id: int, public_key: bytes) -> bytes:
    return associated_data(purpose="compliance-public-key", key_id=key_id, public_key=public_key)


def _sealed_message(
    *, room_id: int, number: int, recipient: str, fingerprint: str, aad_format: int, sealed: bytes
) -> bytes:
    return associated_data(
        purpose="sealed-epoch-key",
        room_id=room_id,
        epoch=number,
        recipient=recipient,
        key=fingerprint,
        aad_format=aad_format,
        sealed=sealed,
    )


# --- the record-MAC key --------------------------------------------------------------------


def forget_record_mac_key() -> None:
    global _mac_key
    with _lock:
        _mac_key = None


def _remember(key: SymmetricKey) -> None:
    global _mac_key
    with _lock:
        _mac_key = key


def _models() -> tuple[Any, Any, Any, Any]:
    from safechat.keyring.models import (
        ComplianceKeyPair,
        RecordMacKey,
        SealedEpochKey,
        UserKeyPair,
    )

    return RecordMacKey, UserKeyPair, ComplianceKeyPair, SealedEpochKey


def _anything_maced(*models: Any) -> bool:
    return any(model.objects.exclude(mac=b"").exists() for model in models)


def record_mac_key(*, record_mac_keys: Any = None, maced: tuple[Any, ...] = ()) -> SymmetricKey:
    """The record-MAC key, unwrapped by the master key; created on first need.

    Refuses (IntegrityFailure) to create a new one while any record carries a MAC: a
    missing key row is then a deletion, and a new key would vouch for whatever the
    database holds. Cached in this process only after the row is committed.
    """
    if record_mac_keys is None:
        cached = _mac_key
        if cached is not None:
            return cached
        record_mac_keys, *rest = _models()
        maced = tuple(rest)
    # Whether anything carries a MAC is read BEFORE the key row: the row commits with (or
    # before) the first MACs, so a MAC seen first means the row was there; reading them the
    # other way round, another process's first commit falling between the two reads would
    # look like a deleted key.
    anything_maced = _anything_maced(*maced)
    row = record_mac_keys.objects.filter(pk=RECORD_MAC_KEY_ID).first()
    if row is None:
        if anything_maced:
            raise integrity_failure(kind="record-mac-key", ref="missing")
        key = SymmetricKey.generate(KeyPurpose.RECORD_MAC)
        wrapped = get_provider().wrap(key.to_bytes(), aad=record_mac_key_aad())
        try:
            with transaction.atomic():
                record_mac_keys.objects.create(
                    pk=RECORD_MAC_KEY_ID,
                    wrapped_key=wrapped.to_bytes(),
                    kek_version=wrapped.version,
                )
        except IntegrityError:  # another process created it first: use theirs
            row = record_mac_keys.objects.get(pk=RECORD_MAC_KEY_ID)
        else:
            transaction.on_commit(lambda: _remember(key))
            return key
    try:
        raw = get_provider().unwrap(bytes(row.wrapped_key), aad=record_mac_key_aad())
        key = SymmetricKey.from_bytes(raw, purpose=KeyPurpose.RECORD_MAC)
    except DecryptionError:
        raise integrity_failure(kind="record-mac-key", ref=str(RECORD_MAC_KEY_ID)) from None
    transaction.on_commit(lambda: _remember(key))
    return key


# --- MACs and their checks -----------------------------------------------------------------


def user_public_key_mac(user_id: int, public_key: bytes) -> bytes:
    return record_mac(
        record_mac_key(),
        _user_public_message(user_id, public_key),
        label=MacLabel.USER_PUBLIC_KEY,
    )


def compliance_public_key_mac(key_id: int, public_key: bytes) -> bytes:
    return record_mac(
        record_mac_key(),
        _compliance_public_message(key_id, public_key),
        label=MacLabel.COMPLIANCE_PUBLIC_KEY,
    )


def sealed_copy_mac(
    *, room_id: int, number: int, recipient: str, fingerprint: str, aad_format: int, sealed: bytes
) -> bytes:
    message = _sealed_message(
        room_id=room_id,
        number=number,
        recipient=recipient,
        fingerprint=fingerprint,
        aad_format=aad_format,
        sealed=sealed,
    )
    return record_mac(record_mac_key(), message, label=MacLabel.SEALED_EPOCH_KEY)


def _verify(message: bytes, mac: bytes, *, label: MacLabel, kind: str, ref: str) -> None:
    try:
        record_mac_verify(record_mac_key(), message, bytes(mac), label=label)
    except MacError:
        raise integrity_failure(kind=kind, ref=ref) from None


def user_public_key_verify(user_id: int, public_key: bytes, mac: bytes) -> None:
    """Raise IntegrityFailure unless ``public_key`` is the one the server gave ``user_id``."""
    _verify(
        _user_public_message(user_id, public_key),
        mac,
        label=MacLabel.USER_PUBLIC_KEY,
        kind="public-key",
        ref=user_recipient(user_id),
    )


def compliance_public_key_verify(key_id: int, public_key: bytes, mac: bytes) -> None:
    """Raise IntegrityFailure unless ``public_key`` is the compliance key the server made."""
    _verify(
        _compliance_public_message(key_id, public_key),
        mac,
        label=MacLabel.COMPLIANCE_PUBLIC_KEY,
        kind="public-key",
        ref=compliance_recipient(key_id),
    )


def sealed_copy_verify(
    *,
    room_id: int,
    number: int,
    recipient: str,
    fingerprint: str,
    aad_format: int,
    sealed: bytes,
    mac: bytes,
) -> None:
    """Raise IntegrityFailure unless the server sealed this copy to this recipient's key."""
    message = _sealed_message(
        room_id=room_id,
        number=number,
        recipient=recipient,
        fingerprint=fingerprint,
        aad_format=aad_format,
        sealed=sealed,
    )
    _verify(
        message,
        mac,
        label=MacLabel.SEALED_EPOCH_KEY,
        kind="epoch-copy",
        ref=f"room {room_id} epoch {number} {recipient}",
    )


# --- reporting -----------------------------------------------------------------------------


def integrity_failure(*, kind: str, ref: str) -> IntegrityFailure:
    """Log and audit a failed check (once per process per item); return the error to raise.

    The audit event survives the caller's rollback: the request that met the tampered
    record fails, its record of the tampering does not.
    """
    failure = IntegrityFailure(kind=kind, ref=ref)
    with _lock:
        first = (kind, ref) not in _reported
        if first:
            if len(_reported) >= _REPORTED_KEPT:
                _reported.clear()
            _reported.add((kind, ref))
    if first:
        logger.error("key integrity check failed: %s %s", kind, ref)
        try:
            audit_record_surviving_rollback(
                actor=INTEGRITY_SYSTEM,
                action=AuditAction.KEY_INTEGRITY_FAILED,
                extra={"kind": kind, "ref": ref},
            )
        except Exception:  # the refusal stands even if the log cannot take it
            logger.exception("could not audit a key integrity failure")
    return failure


def forget_reported() -> None:
    with _lock:
        _reported.clear()


# --- migration: MACs for rows made before MACs existed -------------------------------------


def _fingerprint(public_key: bytes) -> str:
    # TaggedPublicKey.fingerprint() of the stored (tagged) public key.
    return hashlib.sha256(bytes(public_key)).hexdigest()


BACKFILL_FLAG = "SAFECHAT_RECORD_MAC_BACKFILL"


def backfill_requested() -> bool:
    """Whether the operator asked, for this run, to MAC key records that carry none."""
    return os.environ.get(BACKFILL_FLAG, "").strip() == "1"


def _backfill_audit(*, kind: str, ref: str) -> None:
    from audit.services import audit_record

    audit_record(
        actor=INTEGRITY_SYSTEM,
        action=AuditAction.KEY_RECORD_BACKFILLED,
        extra={"kind": kind, "ref": ref},
    )


def macs_backfill(
    *, user_keypairs: Any, compliance_keypairs: Any, sealed_copies: Any, record_mac_keys: Any
) -> int:
    """MAC every key record that has none (data migration); returns how many were MACed.

    A MAC vouches for whatever the row holds, so a row without one is MACed only when the
    operator asks for the one-time backfill (``SAFECHAT_RECORD_MAC_BACKFILL=1``, read now)
    and the database is as a release before record MACs left it: no record MACed yet, no
    record-MAC key. Otherwise un-MACed rows are refused (:class:`BackfillRefused`, nothing
    written): a re-run after the migration was un-recorded must not vouch for a key an
    insider put there. Each row MACed is audited (``key.record.backfilled``). A database
    without un-MACed rows (a new one) needs no flag.
    """
    todo = {
        "user key pairs": user_keypairs.objects.filter(mac=b"").count(),
        "compliance keys": compliance_keypairs.objects.filter(mac=b"").count(),
        "sealed copies": sealed_copies.objects.filter(mac=b"").count(),
    }
    if not any(todo.values()):
        return 0
    counts = ", ".join(f"{name}: {count}" for name, count in todo.items())
    if not backfill_requested():
        logger.error("key records without a MAC: %s", counts)
        raise BackfillRefused(
            f"key records carry no MAC ({counts}). If this database comes from a release "
            f"before record MACs, run migrate once with {BACKFILL_FLAG}=1; otherwise they "
            "were tampered with and stay refused (docs/security-crypto.md)."
        )
    if _anything_maced(user_keypairs, compliance_keypairs, sealed_copies) or (
        record_mac_keys.objects.exists()
    ):
        logger.error("key records without a MAC next to MACed ones: %s", counts)
        raise BackfillRefused(
            f"key records carry no MAC ({counts}) while others carry one or the record-MAC "
            "key exists: no release left a database so; refusing to vouch for them."
        )
    key = record_mac_key(
        record_mac_keys=record_mac_keys,
        maced=(user_keypairs, compliance_keypairs, sealed_copies),
    )
    done = 0
    for keypair in user_keypairs.objects.filter(mac=b"").iterator():
        public = bytes(keypair.public_key)
        keypair.mac = record_mac(
            key, _user_public_message(keypair.user_id, public), label=MacLabel.USER_PUBLIC_KEY
        )
        keypair.save(update_fields=["mac"])
        _backfill_audit(kind="public-key", ref=user_recipient(keypair.user_id))
        done += 1
    public_by_user: dict[int, bytes] = {
        row["user_id"]: bytes(row["public_key"])
        for row in user_keypairs.objects.values("user_id", "public_key")
    }
    public_by_compliance: dict[int, bytes] = {}
    for keypair in compliance_keypairs.objects.all().iterator():
        public = bytes(keypair.public_key)
        public_by_compliance[keypair.pk] = public
        if bytes(keypair.mac):
            continue
        keypair.mac = record_mac(
            key,
            _compliance_public_message(keypair.pk, public),
            label=MacLabel.COMPLIANCE_PUBLIC_KEY,
        )
        keypair.save(update_fields=["mac"])
        _backfill_audit(kind="public-key", ref=compliance_recipient(keypair.pk))
        done += 1
    copies = sealed_copies.objects.filter(mac=b"").select_related("epoch")
    for copy in copies.iterator():
        found: bytes | None
        if copy.user_id is not None:
            recipient, found = user_recipient(copy.user_id), public_by_user.get(copy.user_id)
        else:
            recipient = compliance_recipient(copy.compliance_key_id)
            found = public_by_compliance.get(copy.compliance_key_id)
        if found is None:
            continue  # no key pair: the copy could never be opened anyway
        message = _sealed_message(
            room_id=copy.epoch.room_id,
            number=copy.epoch.number,
            recipient=recipient,
            fingerprint=_fingerprint(found),
            aad_format=copy.aad_format,
            sealed=bytes(copy.sealed),
        )
        copy.mac = record_mac(key, message, label=MacLabel.SEALED_EPOCH_KEY)
        copy.save(update_fields=["mac"])
        where = f"room {copy.epoch.room_id} epoch {copy.epoch.number} {recipient}"
        _backfill_audit(kind="epoch-copy", ref=where)
        done += 1
    return done
