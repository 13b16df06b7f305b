"""The malware verdict: a completed upload is read back, decrypted chunk by chunk into
clamd's INSTREAM (nothing in plaintext on disk on this side), and hashed on the way.

Clean: the file becomes visible, with its SHA-256 sealed beside it. Infected: it is
discarded (its blobs removed), audited, and its state tells the uploader. No verdict
(clamd down, unconfigured, or unable to scan): it stays pending and is tried again.
Withheld: a file is shared as a message from its uploader, so one whose room was archived
or whose uploader can no longer share in it (removed, deactivated, made read-only) while
it waited for its verdict is never shared: it is kept encrypted, audited, and its state
tells the uploader.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from files import blobs
from files.content import FileIntegrityError, decrypted_chunks
from files.models import StoredFile
from files.previews import PREVIEW_MAX_SOURCE_BYTES, preview_kind_sniffed, preview_render
from files.scanner import ScannerUnavailable, clamd_configured, scan_stream
from files.sealing import digest_seal, preview_seal
from files.services.uploads import VAULT_SYSTEM
from rooms import permissions as perms
from rooms.models import Room
from rooms.services import message_file_insert, room_barrier_separating
from safechat.actions import action, action_transaction
from safechat.crypto import SymmetricKey
from safechat.keyring.errors import KeyUnavailableError
from safechat.keyring.services import file_key_unwrap
from safechat.locks import rows_locked

logger = logging.getLogger(__name__)


@action
def file_scan(*, file_id: int) -> str:
    """Scan the pending file ``file_id``; returns its state afterwards.

    Idempotent: a file that is not pending is left as it is. Raises
    ``ScannerUnavailable`` (after counting the attempt) when clamd gives no verdict, so
    a task can retry; the file stays pending. A file whose stored stream fails
    authentication is withdrawn (deleted) and audited as an integrity failure.

    A file whose uploader an information barrier now separates from another member of
    its room stays pending, unscanned and invisible, until the violation is resolved.
    A clean file gets its room message (``rooms.services.messages.message_file_insert``,
    ``message.new`` after commit) in the same transaction that makes it available, and,
    for an image or a PDF, a preview rendered in memory after the verdict and stored
    sealed (``files.previews``; a PDF's in a sandboxed child process).

    A file whose room is archived, or whose uploader may no longer upload to it, is
    withheld (``withheld``, audited ``file.withheld``, kept encrypted, never shown): no
    message is posted in an archived room or in the name of someone who lost the right.
    Checked before the scan (then it is not scanned: nothing of it will be released) and
    again with the verdict, under the locks. Locks: the uploader, then the room, then the
    file row; the audit chain last.
    """
    stored = StoredFile.objects.filter(pk=file_id).select_related("room", "uploader").first()
    if stored is None or stored.state != StoredFile.State.PENDING_SCAN:
        return "" if stored is None else str(stored.state)
    if _share_blocker(room=stored.room, uploader=stored.uploader) is not None:
        withheld = _withhold(file_id=stored.pk, scanned=False)
        if withheld is not None:
            return withheld
    if not clamd_configured():
        return str(stored.state)  # waits, unscanned and invisible, until clamd is configured
    try:
        key = file_key_unwrap(
            room_id=stored.room_id,
            reader_id=stored.uploader_id,
            file_uid=stored.uid,
            epoch=stored.epoch,
            wrapped=bytes(stored.wrapped_key),
        )
    except KeyUnavailableError:
        # The uploader's key copy is gone (removed from the room, epoch shredded).
        logger.warning("file %s: no key to scan it with; it stays pending", stored.pk)
        return str(stored.state)
    if _separated(stored):
        return str(stored.state)
    digest = hashlib.sha256()
    # An image or PDF small enough to preview is kept in memory (never on disk) until the
    # verdict.
    image = bytearray()
    keep = stored.declared_length <= PREVIEW_MAX_SOURCE_BYTES

    def plaintext() -> Iterator[bytes]:
        nonlocal keep
        for piece in decrypted_chunks(stored, key):
            digest.update(piece)
            if keep:
                keep = bool(image) or preview_kind_sniffed(piece[:12]) is not None
                if keep:
                    image.extend(piece)
            yield piece

    try:
        verdict = scan_stream(plaintext())
    except ScannerUnavailable:
        StoredFile.objects.filter(pk=stored.pk).update(scan_attempts=stored.scan_attempts + 1)
        raise
    except FileIntegrityError as exc:
        _withdraw_corrupt(file_id=stored.pk, reason=exc.reason)
        return str(StoredFile.State.DELETED)
    preview = None
    if verdict.clean and keep and image:
        # Decoded only now, after clamd said clean; then sealed before it is stored.
        preview = preview_render(bytes(image))
        image.clear()
        if preview is not None:
            _preview_store(stored, key, preview.image)
    with action_transaction():
        uploader, room, row = _locked(stored)
        if row.state != StoredFile.State.PENDING_SCAN:
            return str(row.state)
        if verdict.clean and _separated(row):  # a barrier committed during the scan
            return str(row.state)
        row.scanned_at = timezone.now()
        row.scan_attempts += 1
        blocker = _share_blocker(room=room, uploader=uploader)
        if verdict.clean and blocker is not None:
            row.sealed_digest = digest_seal(
                key, digest.digest(), room_id=row.room_id, file_uid=row.uid
            )
            _withheld_record(row=row, reason=blocker, scanned=True)
            if preview is not None:  # rendered for a message that will not be posted
                name = blobs.preview_name(row.blob_prefix)
                transaction.on_commit(functools.partial(blobs.blob_delete, name))
        elif verdict.clean:
            row.state = StoredFile.State.AVAILABLE
            row.sealed_digest = digest_seal(
                key, digest.digest(), room_id=row.room_id, file_uid=row.uid
            )
            row.preview_type = preview.content_type if preview is not None else ""
            row.message = message_file_insert(room=room, uploader=uploader, file_id=row.pk)
            row.save()
            audit_record(
                actor=VAULT_SYSTEM,
                action=AuditAction.FILE_SCAN_CLEAN,
                target=row,
                extra={"room": row.room_id},
            )
        else:
            row.state = StoredFile.State.INFECTED
            row.verdict = verdict.signature[:200] or "unnamed"
            row.save()
            audit_record(
                actor=VAULT_SYSTEM,
                action=AuditAction.FILE_SCAN_INFECTED,
                target=row,
                extra={
                    "room": row.room_id,
                    "uploader": row.uploader_id,
                    "signature": row.verdict,
                },
            )
            transaction.on_commit(functools.partial(blobs.blobs_delete_prefix, row.blob_prefix))
    return str(row.state)


def _separated(stored: StoredFile) -> bool:
    """Whether an information barrier now separates the uploader from another member of
    the file's room: then the file is not shared (its message would be content from a
    separated person after the barrier); it stays pending, invisible, and is shared once
    a security admin resolves the violation. Under the room's lock, the check that holds
    (``barrier_create`` locks the rooms where the people it separates meet)."""
    if room_barrier_separating(room_id=stored.room_id, user_id=stored.uploader_id) is None:
        return False
    logger.warning(
        "file %s: its uploader is behind a barrier in its room; it stays pending", stored.pk
    )
    return True


def _locked(stored: StoredFile) -> tuple[User, Room, StoredFile]:
    """The uploader, the room and the file row, locked in the project's order."""
    uploader = rows_locked(User, [stored.uploader_id])[0]
    room = rows_locked(Room, [stored.room_id])[0]
    row = rows_locked(StoredFile, [stored.pk])[0]
    return uploader, room, row


def _share_blocker(*, room: Room, uploader: User) -> str | None:
    """Why a file of ``uploader`` may not be shared in ``room`` now (as read), or None.

    A file's message is posted in the uploader's name: the room must be live, and the
    uploader active and still allowed to upload to it (the right ``upload_create`` and
    every append checked).
    """
    if room.is_archived:
        return "room archived"
    if perms.UPLOAD not in perms.room_permissions_of(room=room, user=uploader):
        return "uploader may no longer share in the room"
    return None


def _withheld_record(*, row: StoredFile, reason: str, scanned: bool) -> None:
    """Inside the verdict's transaction: ``row`` becomes withheld, audited with why."""
    row.state = StoredFile.State.WITHHELD
    row.preview_type = ""
    row.save()
    audit_record(
        actor=VAULT_SYSTEM,
        action=AuditAction.FILE_WITHHELD,
        target=row,
        extra={
            "room": row.room_id,
            "uploader": row.uploader_id,
            "reason": reason,
            "scan": "clean" if scanned else "not scanned",
        },
    )


def _withhold(*, file_id: int, scanned: bool) -> str | None:
    """Withhold the pending file ``file_id`` if, under the locks, it still may not be
    shared; returns its state then, or None when it may be shared after all."""
    with action_transaction():
        stored = StoredFile.objects.get(pk=file_id)
        uploader, room, row = _locked(stored)
        if row.state != StoredFile.State.PENDING_SCAN:
            return str(row.state)
        blocker = _share_blocker(room=room, uploader=uploader)
        if blocker is None:
            return None
        _withheld_record(row=row, reason=blocker, scanned=scanned)
    return str(row.state)


def _preview_store(stored: StoredFile, key: SymmetricKey, image: bytes) -> None:
    name = blobs.preview_name(stored.blob_prefix)
    if blobs.blob_exists(name):  # left by an attempt whose transaction did not commit
        blobs.blob_delete(name)
    blobs.blob_write(name, [preview_seal(key, image, room_id=stored.room_id, file_uid=stored.uid)])


def _withdraw_corrupt(*, file_id: int, reason: str) -> None:
    with action_transaction():
        row = rows_locked(StoredFile, [file_id])[0]
        if row.state != StoredFile.State.PENDING_SCAN:
            return
        row.state = StoredFile.State.DELETED
        row.deleted_at = timezone.now()
        row.save(update_fields=["state", "deleted_at"])
        audit_record(
            actor=VAULT_SYSTEM,
            action=AuditAction.FILE_INTEGRITY_FAILED,
            target=row,
            extra={"room": row.room_id, "reason": reason, "during": "scan"},
        )


@action
def files_scan_pending() -> int:
    """Scan every pending file (the beat sweep behind the per-file task); returns how many
    got a verdict. Stops at the first ``ScannerUnavailable``: clamd is down for all."""
    done = 0
    ids = StoredFile.objects.filter(state=StoredFile.State.PENDING_SCAN).values_list(
        "pk", flat=True
    )
    for file_id in list(ids):
        try:
            state = file_scan(file_id=file_id)
        except ScannerUnavailable:
            break
        if state != StoredFile.State.PENDING_SCAN:
            done += 1
    return done
