"""Uploads into the vault: created, appended to request by request, cancelled, expired.

No plaintext byte is written anywhere: each request's bytes are encrypted as they arrive
(``safechat.crypto.stream``), whole chunks go to a segment blob, and what is left of an
incomplete chunk when the request ends is sealed into a tail blob (docs/files.md).

An append streams a request body, which can take minutes; no database transaction stays
open for it. The append claims the upload in a short transaction (a lease: one writer at
a time, at the upload's own offset), streams with no lock held, then records the new
position in a second transaction that checks the lease and the uploader's right again.
Locks: the room, then the file row; the audit chain last.
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from files import blobs, policy
from files.models import StoredFile
from files.names import FileNameError, content_type_clean, file_name_clean
from files.quota import room_files_used_bytes
from files.sealing import FileMetadata, content_aad, metadata_open, metadata_seal, tail_aad
from files.services._common import (
    UploadConflictError,
    UploadGoneError,
    UploadInvalidError,
    UploadQuotaError,
    UploadTooLargeError,
    UploadTypeError,
    upload_refused,
)
from rooms import permissions as perms
from rooms.models import Room
from rooms.ratelimit import Write, write_rate_check
from rooms.services import require_writable
from rooms.services.epochs import file_key_wrap
from safechat.actions import action, action_transaction
from safechat.crypto import KeyPurpose, SymmetricKey
from safechat.crypto.stream import StreamEncryptor, open_tail, seal_tail
from safechat.keyring.services import file_key_unwrap
from safechat.locks import rows_locked

logger = logging.getLogger(__name__)

VAULT_SYSTEM = SystemActor("vault")
SCAN_TASK = "files.scan_file"
# A request's claim on an upload lasts this long and is renewed while bytes arrive, so a
# writer that died (a server crash, a killed worker) blocks a resume for at most this.
LEASE_SECONDS = 120
# A streaming request renews its claim when this much of it has passed.
LEASE_RENEW_SECONDS = 30
# Every request that seals a whole chunk stores one segment; this bounds a file's blobs.
MAX_SEGMENTS = 4096


def _room_locked(room_id: int) -> Room:
    locked = rows_locked(Room, [room_id])
    if not locked:
        raise Http404("no such room")
    return locked[0]


def _file_locked(file_id: int) -> StoredFile:
    locked = rows_locked(StoredFile, [file_id])
    if not locked:
        raise Http404("no such upload")
    return locked[0]


def _type_policy() -> policy.Policy:
    """The type policy of the settings (``SAFECHAT_FILE_*``: docs/files.md)."""
    return policy.Policy.of(
        blocked_extensions=settings.SAFECHAT_FILE_BLOCKED_EXTENSIONS,
        allowed_extensions=settings.SAFECHAT_FILE_ALLOWED_EXTENSIONS,
        blocked_types=settings.SAFECHAT_FILE_BLOCKED_TYPES,
        blocked_kinds=settings.SAFECHAT_FILE_BLOCKED_KINDS,
    )


def scan_enqueue(file_id: int) -> None:
    """Queue the scan of a completed upload (after commit); the beat sweep is the backstop."""
    try:
        current_app.send_task(SCAN_TASK, args=[file_id])
    except Exception:
        logger.exception("could not queue a file scan; the periodic sweep will scan it")


@action
def upload_create(
    *, actor: User, room: Room, length: int, name: str, content_type: str = ""
) -> StoredFile:
    """Begin an upload of ``length`` bytes named ``name`` into ``room``.

    Guarantees: the file gets its own random key, wrapped under the room's current epoch
    (counted toward its bound); its name and content type are stored sealed with that
    key; nothing is visible to members until the upload completes and scans clean. A
    zero-length file is complete at once (and queued for its scan).
    Raises ``UploadInvalidError`` (bad name or length), ``UploadTooLargeError`` (over
    ``SAFECHAT_FILE_MAX_BYTES``), ``UploadTypeError`` (a name or declared type the type
    policy blocks), ``UploadQuotaError`` (the room's files would pass
    ``SAFECHAT_ROOM_FILE_QUOTA_BYTES``; checked under the room lock, so two creations
    cannot both take the last bytes), ``Refused`` (no upload right, archived room; an
    information barrier separating the uploader from another member, ``barrier.refused``,
    here and at every append), ``RateLimitedError``. Locks: the room; the audit chain last.
    """
    try:
        clean_name = file_name_clean(name)
    except FileNameError as exc:
        raise upload_refused(
            UploadInvalidError, actor=actor, target=room, reason="bad name", message=str(exc)
        ) from None
    clean_type = content_type_clean(content_type)
    try:
        policy.check_declared(_type_policy(), name=clean_name, content_type=clean_type)
    except policy.FilePolicyError as exc:
        raise upload_refused(
            UploadTypeError, actor=actor, target=room, reason=exc.reason, message=str(exc)
        ) from None
    if length == 0:  # the content is known now: no bytes
        try:
            policy.check_content(_type_policy(), head=b"", name=clean_name, content_type=clean_type)
        except policy.FilePolicyError as exc:
            raise upload_refused(
                UploadTypeError, actor=actor, target=room, reason=exc.reason, message=str(exc)
            ) from None
    if length < 0:
        raise upload_refused(
            UploadInvalidError,
            actor=actor,
            target=room,
            reason="bad length",
            message="the upload length must be a number of bytes",
        )
    if length > settings.SAFECHAT_FILE_MAX_BYTES:
        raise upload_refused(
            UploadTooLargeError,
            actor=actor,
            target=room,
            reason="too large",
            message=f"files are limited to {settings.SAFECHAT_FILE_MAX_BYTES} bytes",
            length=length,
        )
    # a quick answer
    require_writable(actor=actor, room=room, permission=perms.UPLOAD, operation="file.upload")
    write_rate_check(user_id=actor.pk, write=Write.UPLOAD)
    uid = uuid.uuid4()
    key = SymmetricKey.generate(KeyPurpose.FILE)
    encryptor = StreamEncryptor(key, aad=content_aad(room_id=room.pk, file_uid=uid))
    encryptor.update(b"")  # emits the header, kept in the row rather than in a blob
    prefix = uid.hex
    if length == 0:
        # The whole stream is one empty last chunk: stored before the row, removed on failure.
        blobs.blob_write(blobs.segment_name(prefix, 0), [encryptor.finalize()])
    try:
        with action_transaction():
            room = _room_locked(room.pk)
            require_writable(
                actor=actor, room=room, permission=perms.UPLOAD, operation="file.upload"
            )
            _require_quota(actor=actor, room=room, length=length)
            epoch, wrapped = file_key_wrap(room=room, owner=actor, file_uid=uid, file_key=key)
            now = timezone.now()
            stored = StoredFile.objects.create(
                uid=uid,
                room=room,
                uploader=actor,
                epoch=epoch,
                wrapped_key=wrapped,
                sealed_metadata=metadata_seal(
                    key,
                    FileMetadata(name=clean_name, content_type=clean_type),
                    room_id=room.pk,
                    file_uid=uid,
                ),
                declared_length=length,
                stream_header=encryptor.header,
                blob_prefix=prefix,
                expires_at=now + timedelta(hours=settings.SAFECHAT_UPLOAD_EXPIRY_HOURS),
                **(
                    {
                        "state": StoredFile.State.PENDING_SCAN,
                        "completed_at": now,
                        "chunks_sealed": 1,
                        "segment_starts": [0],
                    }
                    if length == 0
                    else {}
                ),
            )
            audit_record(
                actor=actor,
                action=AuditAction.FILE_UPLOAD_STARTED,
                target=stored,
                extra={"room": room.pk, "length": length},
            )
            if length == 0:
                _record_completed(actor=actor, stored=stored)
    except BaseException:
        if length == 0:
            blobs.blobs_delete_prefix(prefix)
        raise
    return stored


def _require_quota(*, actor: User, room: Room, length: int) -> None:
    """Refuse an upload that would take the room past its quota (the room row is locked)."""
    quota = settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES
    used = room_files_used_bytes(room.pk)
    if used + length > quota:
        raise upload_refused(
            UploadQuotaError,
            actor=actor,
            target=room,
            reason="room quota",
            message=f"this room's files are limited to {quota} bytes; "
            f"{max(0, quota - used)} bytes are left",
            length=length,
            used=used,
            quota=quota,
        )


def _record_completed(*, actor: User, stored: StoredFile) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.FILE_UPLOADED,
        target=stored,
        extra={"room": stored.room_id, "length": stored.declared_length},
    )
    file_id = stored.pk
    transaction.on_commit(lambda: scan_enqueue(file_id))


def upload_for_uploader(*, actor: User, upload_id: object) -> StoredFile:
    """The upload ``upload_id`` (a uid) if ``actor`` is its uploader, else Http404.

    Only the uploader addresses an upload (tus HEAD, PATCH, DELETE); anyone else, and a
    malformed id, gets the same 404.
    """
    try:
        uid = uuid.UUID(str(upload_id))
    except ValueError:
        raise Http404("no such upload") from None
    stored = StoredFile.objects.filter(uid=uid, uploader=actor).select_related("room").first()
    if stored is None or not actor.is_active:
        raise Http404("no such upload")
    return stored


def _require_open(*, actor: User, stored: StoredFile) -> None:
    if not stored.upload_open:
        raise upload_refused(
            UploadGoneError,
            actor=actor,
            target=stored,
            reason=f"upload {stored.state}",
            message="this upload is finished, cancelled or expired",
        )


@dataclass
class _Progress:
    received: int = 0
    segment_start: int | None = None
    tail: str = ""
    counter: int = 0
    complete: bool = False


def _claim(*, actor: User, stored: StoredFile, offset: int) -> tuple[StoredFile, str]:
    """Transaction one: check the right, the state and the offset; take the lease."""
    token = secrets.token_hex(16)
    with action_transaction():
        room = _room_locked(stored.room_id)
        require_writable(actor=actor, room=room, permission=perms.UPLOAD, operation="file.upload")
        stored = _file_locked(stored.pk)
        _require_open(actor=actor, stored=stored)
        now = timezone.now()
        if stored.lease_token and stored.lease_expires_at and stored.lease_expires_at > now:
            raise upload_refused(
                UploadConflictError,
                actor=actor,
                target=stored,
                reason="busy",
                message="another request is writing this upload; ask for its offset again",
                offset=offset,
            )
        # A lapsed lease is a writer that stopped without recording (it died, or stalled
        # past its lease). If it stored chunks past the recorded position, those positions
        # hold its ciphertext: sealing them again with other bytes would reuse nonces.
        writer_lost = bool(stored.lease_token) and blobs.blob_exists(
            blobs.segment_name(stored.blob_prefix, stored.chunks_sealed)
        )
        if writer_lost:
            _upload_end(
                stored, state=StoredFile.State.EXPIRED, actor=VAULT_SYSTEM,
                action=AuditAction.FILE_UPLOAD_EXPIRED,
                extra={"reason": "writer lost after writing"},
            )  # fmt: skip
        if offset != stored.received_offset:
            raise upload_refused(
                UploadConflictError,
                actor=actor,
                target=stored,
                reason="offset mismatch",
                message=f"the upload is at offset {stored.received_offset}",
                offset=offset,
                expected=stored.received_offset,
            )
        if len(stored.segment_starts) >= MAX_SEGMENTS:
            raise upload_refused(
                UploadTooLargeError,
                actor=actor,
                target=stored,
                reason="too many requests",
                message="this upload was sent in too many pieces; start it again",
            )
        if not writer_lost:
            stored.lease_token = token
            stored.lease_expires_at = now + timedelta(seconds=LEASE_SECONDS)
            stored.save(update_fields=["lease_token", "lease_expires_at"])
    if writer_lost:
        raise upload_refused(
            UploadGoneError,
            actor=actor,
            target=stored,
            reason="writer lost after writing",
            message="a request writing this upload stopped after storing part of it; "
            "start the upload again",
        )
    return stored, token


class _Lease:
    """A streaming request's claim, renewed every ``LEASE_RENEW_SECONDS`` while bytes
    arrive; ``keep`` raises ``UploadConflictError`` once the claim is gone (it lapsed and
    another request may have taken the upload), before another byte is sealed."""

    def __init__(self, *, actor: User, stored: StoredFile, token: str) -> None:
        self.actor, self.stored, self.token = actor, stored, token
        self.renewed = time.monotonic()

    def keep(self) -> None:
        if time.monotonic() - self.renewed < LEASE_RENEW_SECONDS:
            return
        now = timezone.now()
        with transaction.atomic():
            kept = StoredFile.objects.filter(
                pk=self.stored.pk,
                lease_token=self.token,
                lease_expires_at__gt=now,
                state=StoredFile.State.UPLOADING,
            ).update(lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
        if not kept:
            raise upload_refused(
                UploadConflictError,
                actor=self.actor,
                target=self.stored,
                reason="lease lost",
                message="this request stalled and lost its turn; ask for the offset again",
            )
        self.renewed = time.monotonic()


def _release(stored: StoredFile, token: str) -> None:
    with transaction.atomic():
        StoredFile.objects.filter(pk=stored.pk, lease_token=token).update(
            lease_token="", lease_expires_at=None
        )


def _peek(pieces: Iterator[bytes]) -> Iterator[bytes] | None:
    """``pieces`` unchanged, or None if it yields no bytes at all."""
    for first in pieces:
        if first:
            return itertools.chain([first], pieces)
    return None


def _stream(
    *, actor: User, stored: StoredFile, token: str, body: Iterable[bytes], written: list[str]
) -> _Progress:
    """Encrypt ``body`` into a new segment and tail; names written are added to ``written``.
    Each piece is sealed only while the request still holds its lease (``_Lease``)."""
    lease = _Lease(actor=actor, stored=stored, token=token)
    key = file_key_unwrap(
        room_id=stored.room_id,
        reader_id=stored.uploader_id,
        file_uid=stored.uid,
        epoch=stored.epoch,
        wrapped=bytes(stored.wrapped_key),
    )
    header = bytes(stored.stream_header)
    pending = b""
    if stored.tail_name:
        pending = open_tail(
            key,
            blobs.blob_read_all(stored.tail_name),
            header=header,
            counter=stored.chunks_sealed,
            aad=tail_aad(
                room_id=stored.room_id, file_uid=stored.uid, offset=stored.received_offset
            ),
        )
    encryptor = StreamEncryptor.resume(
        key,
        header=header,
        counter=stored.chunks_sealed,
        aad=content_aad(room_id=stored.room_id, file_uid=stored.uid),
        pending=pending,
    )
    remaining = stored.declared_length - stored.received_offset
    progress = _Progress(counter=stored.chunks_sealed)
    # The type policy reads the file's first bytes once, when they have all arrived; until
    # then every byte received is plaintext pending in memory (a tail is under one chunk).
    need = min(policy.SNIFF_BYTES, stored.declared_length)
    head: bytearray | None = bytearray(pending) if stored.received_offset < need else None

    def ciphertext() -> Iterator[bytes]:
        nonlocal head
        for piece in body:
            lease.keep()
            if progress.received + len(piece) > remaining:
                raise upload_refused(
                    UploadTooLargeError,
                    actor=actor,
                    target=stored,
                    reason="past declared length",
                    message="the request runs past the upload's declared length",
                )
            if head is not None:
                head += piece[: need - len(head)]
                if len(head) >= need:
                    _check_content(actor=actor, stored=stored, key=key, head=bytes(head))
                    head = None
            progress.received += len(piece)
            out = encryptor.update(piece)
            if out:
                yield out
        if progress.received == remaining:
            progress.complete = True
            yield encryptor.finalize()
        elif progress.received and (out := encryptor.flush()):
            # More bytes are declared, so a full pending chunk is not the last: sealed into
            # this segment now (the one-shot stream's bytes) rather than kept in a tail.
            yield out

    sealed = _peek(ciphertext())
    if sealed is not None:
        name = blobs.segment_name(stored.blob_prefix, stored.chunks_sealed)
        written.append(name)
        blobs.blob_write(name, sealed)
        progress.segment_start = stored.chunks_sealed
    progress.counter = encryptor.counter
    if not progress.complete and progress.received and encryptor.pending:
        offset = stored.received_offset + progress.received
        progress.tail = blobs.tail_name(stored.blob_prefix, offset)
        if blobs.blob_exists(progress.tail):
            blobs.blob_delete(progress.tail)  # left by a request that failed before recording
        written.append(progress.tail)
        blobs.blob_write(
            progress.tail,
            [
                seal_tail(
                    key,
                    encryptor.pending,
                    header=header,
                    counter=encryptor.counter,
                    aad=tail_aad(room_id=stored.room_id, file_uid=stored.uid, offset=offset),
                )
            ],
        )
    return progress


def _check_content(*, actor: User, stored: StoredFile, key: SymmetricKey, head: bytes) -> None:
    """Refuse the upload if its first bytes are a blocked kind or disagree with its name or
    declared type (``files.policy.check_content``); ``head`` stays in memory."""
    metadata = metadata_open(
        key, bytes(stored.sealed_metadata), room_id=stored.room_id, file_uid=stored.uid
    )
    try:
        policy.check_content(
            _type_policy(), head=head, name=metadata.name, content_type=metadata.content_type
        )
    except policy.FilePolicyError as exc:
        raise upload_refused(
            UploadTypeError, actor=actor, target=stored, reason=exc.reason, message=str(exc)
        ) from None


def _upload_end(
    row: StoredFile,
    *,
    state: StoredFile.State,
    actor: User | SystemActor,
    action: AuditAction,
    extra: dict[str, Any],
) -> None:
    """End the unfinished upload ``row`` (locked by the caller) in ``state``: no tail and no
    lease left, the end on the record, and its blobs removed once the transaction commits
    (never before: a rollback keeps what the row still points to)."""
    row.state = state
    row.tail_name = ""
    row.lease_token = ""
    row.lease_expires_at = None
    fields = ["state", "tail_name", "lease_token", "lease_expires_at"]
    if isinstance(actor, User):  # a person cancelled it (tus termination)
        row.deleted_at, row.deleted_by = timezone.now(), actor
        fields += ["deleted_at", "deleted_by"]
    row.save(update_fields=fields)
    audit_record(actor=actor, action=action, target=row, extra=extra)
    transaction.on_commit(functools.partial(blobs.blobs_delete_prefix, row.blob_prefix))


def _end_broken(*, stored: StoredFile, reason: str) -> None:
    """End an upload whose stream cannot continue safely (chunks written but not recorded:
    their nonces must not be used again); its blobs are removed."""
    with action_transaction():
        row = _file_locked(stored.pk)
        if row.state != StoredFile.State.UPLOADING:
            return
        _upload_end(
            row, state=StoredFile.State.EXPIRED, actor=VAULT_SYSTEM,
            action=AuditAction.FILE_UPLOAD_EXPIRED, extra={"reason": reason},
        )  # fmt: skip


@action
def upload_append(
    *,
    actor: User,
    stored: StoredFile,
    offset: int,
    body: Iterable[bytes],
    body_length: int | None = None,
) -> StoredFile:
    """Append ``body`` (an iterable of byte pieces, e.g. a request body as it arrives)
    at ``offset``; returns the upload with its new offset.

    Guarantees: the bytes are encrypted as they arrive, no plaintext is stored; one
    request writes an upload at a time, at its current offset (of two at the same offset,
    one wins, the other gets ``UploadConflictError``); a body that ends early (a client
    that disconnects) keeps what arrived, so the upload resumes there; a body running
    past the declared length is refused (``UploadTooLargeError``) and stores nothing.
    When the last byte arrives the file is complete: audited ``file.uploaded`` and queued
    for its scan; it stays invisible until the scan is clean. A request that fails after
    chunks reached storage ends the upload (the client starts again): a chunk's nonce is
    never used for other bytes. Raises ``UploadGoneError``, ``UploadConflictError``,
    ``UploadTooLargeError``, ``UploadTypeError`` (the first ``files.policy.SNIFF_BYTES``
    of plaintext, held in memory only, are a blocked kind or disagree with the name or
    declared type: checked before any of them is sealed; the upload ends and its blobs
    are removed), ``Refused`` (right lost, or an information barrier now separating
    the uploader from another member of the room). Locks: the room, then the file
    row, in each of its two short transactions; the audit chain last. ``body_length``
    (a request's announced length, when known) refuses a body that would run past the
    declared length before any of it is read.
    """
    if body_length is not None and offset + body_length > stored.declared_length:
        raise upload_refused(
            UploadTooLargeError,
            actor=actor,
            target=stored,
            reason="past declared length",
            message="the request runs past the upload's declared length",
        )
    stored, token = _claim(actor=actor, stored=stored, offset=offset)
    written: list[str] = []
    try:
        progress = _stream(actor=actor, stored=stored, token=token, body=body, written=written)
    except BaseException as exc:
        segment_written = any("/seg-" in name for name in written)
        for name in written:
            blobs.blob_delete(name)
        if isinstance(exc, UploadTypeError):
            # A refused file is refused for good: the upload ends, nothing of it is kept.
            _end_broken(stored=stored, reason="type refused")
        elif segment_written and not isinstance(exc, UploadTooLargeError):
            _end_broken(stored=stored, reason="request failed after writing")
        elif segment_written:
            _end_broken(stored=stored, reason="request ran past the declared length")
        else:
            _release(stored, token)
        raise
    try:
        return _record_progress(
            actor=actor, stored=stored, token=token, progress=progress, written=written
        )
    except BaseException:
        for name in written:
            blobs.blob_delete(name)
        if progress.segment_start is not None:
            _end_broken(stored=stored, reason="request not recorded after writing")
        else:
            _release(stored, token)
        raise


def _record_progress(
    *, actor: User, stored: StoredFile, token: str, progress: _Progress, written: list[str]
) -> StoredFile:
    """Transaction two: the right and the lease again, then the new position."""
    with action_transaction():
        room = _room_locked(stored.room_id)
        require_writable(actor=actor, room=room, permission=perms.UPLOAD, operation="file.upload")
        row = _file_locked(stored.pk)
        if row.lease_token != token or row.state != StoredFile.State.UPLOADING:
            raise upload_refused(
                UploadConflictError,
                actor=actor,
                target=row,
                reason="lease lost",
                message="this request took too long and lost its turn; ask for the offset again",
            )
        old_tail = row.tail_name
        row.received_offset += progress.received
        row.chunks_sealed = progress.counter
        if progress.segment_start is not None:
            row.segment_starts = [*row.segment_starts, progress.segment_start]
        row.lease_token = ""
        row.lease_expires_at = None
        if progress.complete:
            row.state = StoredFile.State.PENDING_SCAN
            row.completed_at = timezone.now()
            row.tail_name = ""
        elif progress.received:
            row.tail_name = progress.tail
        row.save(
            update_fields=[
                "received_offset",
                "chunks_sealed",
                "segment_starts",
                "lease_token",
                "lease_expires_at",
                "state",
                "completed_at",
                "tail_name",
            ]
        )
        if progress.complete:
            _record_completed(actor=actor, stored=row)
        if old_tail and old_tail != row.tail_name:
            transaction.on_commit(lambda: blobs.blob_delete(old_tail))
    return row


@action
def upload_terminate(*, actor: User, stored: StoredFile) -> None:
    """Cancel an unfinished upload (tus termination): it ends and its blobs are removed.

    Raises ``UploadGoneError`` if it is already complete, cancelled or expired, and
    ``UploadConflictError`` while a request is writing it. Locks: the room, then the
    file row; the audit chain last.
    """
    with action_transaction():
        _room_locked(stored.room_id)
        row = _file_locked(stored.pk)
        _require_open(actor=actor, stored=row)
        if row.lease_token and row.lease_expires_at and row.lease_expires_at > timezone.now():
            raise upload_refused(
                UploadConflictError,
                actor=actor,
                target=row,
                reason="busy",
                message="a request is writing this upload; try again when it ends",
            )
        _upload_end(
            row, state=StoredFile.State.DELETED, actor=actor,
            action=AuditAction.FILE_UPLOAD_TERMINATED,
            extra={"room": row.room_id, "received": row.received_offset},
        )  # fmt: skip


@action
def uploads_expire() -> int:
    """End every upload past its expiry and remove its blobs; returns how many.

    Idempotent (a Celery beat job). An upload being written (its lease live) waits for
    the next run. Locks: each file row in turn; the audit chain last.
    """
    now = timezone.now()
    expired = 0
    ids = list(
        StoredFile.objects.filter(
            state=StoredFile.State.UPLOADING, expires_at__lte=now
        ).values_list("pk", flat=True)
    )
    for file_id in ids:
        with action_transaction():
            row = _file_locked(file_id)
            live_lease = row.lease_token and row.lease_expires_at and row.lease_expires_at > now
            if row.state != StoredFile.State.UPLOADING or live_lease:
                continue
            _upload_end(
                row, state=StoredFile.State.EXPIRED, actor=VAULT_SYSTEM,
                action=AuditAction.FILE_UPLOAD_EXPIRED,
                extra={"room": row.room_id, "received": row.received_offset},
            )  # fmt: skip
        expired += 1
    return expired
