"""Reads of the vault, scoped to the reader: lists, metadata, and the download stream.

A file is found only by a member who may view its room, only once it scanned clean and
until it is deleted; everyone else gets the same 404 as for a file that never existed.
The reader opens the file key with their own copy of the room's epoch key.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from files import blobs
from files.content import FileIntegrityError, chunk_size_of, decrypted_chunks
from files.models import StoredFile
from files.quota import COUNTED_STATES, room_files_used_bytes
from files.scanner import ScannerState, scanner_state
from files.sealing import digest_open, metadata_open, preview_open
from files.services.files import file_integrity_failure_record
from rooms import permissions as perms
from rooms.attachments import AttachmentView, ScanWaiting
from rooms.models import Message
from rooms.selectors import room_get_for_user, rooms_for_user, visible_from_seq
from safechat.crypto import CryptoError, SymmetricKey
from safechat.keyring.errors import KeyUnavailableError
from safechat.keyring.services import file_key_unwrap

# A download re-checks the reader's right at least this often (chunks, seconds).
# The time bound is what cuts a download promptly; the chunk bound (16 MiB) only adds a
# check on fast links. Each check is two queries: once a MiB made them a third of a
# download's time.
RECHECK_CHUNKS = 256
RECHECK_SECONDS = 2.0


class DownloadCutError(Exception):
    """The reader lost the right to read while downloading; the stream ends here."""


@dataclass(frozen=True)
class FileView:
    """What a member sees of a file (never its content)."""

    uid: uuid.UUID
    room_id: int
    name: str
    content_type: str
    size: int
    sha256: str
    uploader_id: int
    uploaded_at: datetime


def _visible(files: QuerySet[StoredFile]) -> QuerySet[StoredFile]:
    # Scanned clean, not deleted, and its room message (if any) not deleted either.
    return files.filter(state=StoredFile.State.AVAILABLE).exclude(message__deleted_at__isnull=False)


@dataclass(frozen=True)
class FileUsage:
    """A room's file storage against its quota, in bytes."""

    room_id: int
    used_bytes: int
    quota_bytes: int
    files: int  # uploads in progress, pending scan and available


def room_file_usage(*, user: User, room_id: object) -> FileUsage:
    """What room ``room_id``'s files use of its quota, for those who manage the room (its
    owners). Http404 if ``user`` cannot view the room, PermissionDenied if they view it
    without managing it."""
    room = room_get_for_user(user=user, room_id=room_id)
    if not perms.has_room_permission(room=room, user=user, permission=perms.MANAGE_ROOM):
        raise PermissionDenied("only the room's owners see its storage")
    return FileUsage(
        room_id=room.pk,
        used_bytes=room_files_used_bytes(room.pk),
        quota_bytes=settings.SAFECHAT_ROOM_FILE_QUOTA_BYTES,
        files=StoredFile.objects.filter(room=room, state__in=COUNTED_STATES).count(),
    )


def file_list_for_user(*, user: User, room_id: object) -> QuerySet[StoredFile]:
    """The room's visible files, newest first; Http404 if ``user`` cannot view the room.

    In a room that hides history, files shared before ``user`` joined are left out."""
    room = room_get_for_user(user=user, room_id=room_id)
    files = _visible(StoredFile.objects.filter(room=room))
    since = visible_from_seq(reader=user, room=room)
    if since:
        files = files.filter(message__seq__gt=since)
    return files.order_by("-id")


def file_get_for_user(*, user: User, file_id: object) -> StoredFile:
    """The visible file ``file_id`` (its uid) in a room ``user`` may view, else Http404."""
    try:
        uid = uuid.UUID(str(file_id))
    except ValueError:
        raise Http404("no such file") from None
    stored = (
        _visible(StoredFile.objects.filter(uid=uid, room__in=rooms_for_user(user=user)))
        .select_related("room", "message")
        .first()
    )
    if stored is None:
        raise Http404("no such file")
    since = visible_from_seq(reader=user, room=stored.room)
    if since and (stored.message is None or stored.message.seq <= since):
        raise Http404("no such file")  # shared before they joined a room hiding history
    return stored


def _key_for(*, reader: User, stored: StoredFile) -> SymmetricKey:
    try:
        return file_key_unwrap(
            room_id=stored.room_id,
            reader_id=reader.pk,
            file_uid=stored.uid,
            epoch=stored.epoch,
            wrapped=bytes(stored.wrapped_key),
        )
    except KeyUnavailableError:
        # A member without this epoch's key (joined later, history hidden) does not see it.
        raise Http404("no such file") from None


def file_view(*, reader: User, stored: StoredFile) -> FileView:
    """The file's metadata opened with ``reader``'s key; Http404 if they hold none.

    Raises ``FileIntegrityError`` if the sealed metadata is not this file's.
    """
    key = _key_for(reader=reader, stored=stored)
    try:
        metadata = metadata_open(
            key, bytes(stored.sealed_metadata), room_id=stored.room_id, file_uid=stored.uid
        )
        digest = (
            digest_open(
                key, bytes(stored.sealed_digest), room_id=stored.room_id, file_uid=stored.uid
            )
            if stored.sealed_digest is not None
            else b""
        )
    except CryptoError:
        raise FileIntegrityError("sealed metadata failed authentication") from None
    return FileView(
        uid=stored.uid,
        room_id=stored.room_id,
        name=metadata.name,
        content_type=metadata.content_type,
        size=stored.declared_length,
        sha256=digest.hex(),
        uploader_id=stored.uploader_id,
        uploaded_at=stored.completed_at or stored.created_at,
    )


def file_etag(stored: StoredFile) -> str:
    """The download's entity tag: a strong validator (RFC 9110, section 8.8.3), quoted.

    A file's bytes never change under its id (another upload is another file), so the tag
    names the stored stream: SHA-256 of the file's uid and its stream header (random per
    upload, kept in the row), 128 bits in hex. Nothing of the content goes into it: it
    reveals nothing the URL and the row do not, and says nothing about the plaintext.
    """
    digest = hashlib.sha256(
        b"safechat/v1/file-etag\x00" + stored.uid.bytes + bytes(stored.stream_header)
    )
    return f'"{digest.hexdigest()[:32]}"'


def attachments_for_messages(
    reader: User, messages: Sequence[Message]
) -> dict[int, AttachmentView]:
    """The files ``messages`` share that ``reader`` can open, by message id (one query).

    Registered as the rooms' attachment opener (``rooms.attachments``). A file that is
    not visible (deleted), or whose key the reader does not hold, or whose sealed
    metadata fails its check, is left out: the message shows no file.
    """
    files = (
        StoredFile.objects.filter(
            message_id__in=[m.pk for m in messages], state=StoredFile.State.AVAILABLE
        )
        .select_related("uploader")
        .order_by()
    )
    found: dict[int, AttachmentView] = {}
    for stored in files:
        try:
            view = file_view(reader=reader, stored=stored)
        except (Http404, FileIntegrityError):
            continue
        found[int(stored.message_id or 0)] = AttachmentView(
            uid=str(view.uid),
            room_id=view.room_id,
            name=view.name,
            content_type=view.content_type,
            size=view.size,
            sha256=view.sha256,
            uploader_id=view.uploader_id,
            uploader=stored.uploader.get_username(),
            has_preview=bool(stored.preview_type),
        )
    return found


def scan_waiting_for_room(room_id: int) -> ScanWaiting:
    """Whether files can be scanned now and, when not, how many of the room's files wait
    for the scanner (``pending_scan``: complete, unscanned, invisible). A count, never who
    or what: for the chat page of a member who may view the room (checked by the caller).
    """
    if scanner_state() == ScannerState.READY:
        return ScanWaiting(scanner_ready=True, files=0)
    waiting = StoredFile.objects.filter(room_id=room_id, state=StoredFile.State.PENDING_SCAN)
    return ScanWaiting(scanner_ready=False, files=waiting.count())


def file_preview(*, reader: User, stored: StoredFile) -> tuple[bytes, str]:
    """The file's preview image opened with ``reader``'s key: (bytes, media type).

    Http404 when the file has none (or the reader holds no key); ``FileIntegrityError``
    when the stored preview is missing or fails authentication (the caller audits it).
    """
    if not stored.preview_type:
        raise Http404("no preview")
    key = _key_for(reader=reader, stored=stored)
    try:
        sealed = blobs.blob_read_all(blobs.preview_name(stored.blob_prefix))
        image = preview_open(key, sealed, room_id=stored.room_id, file_uid=stored.uid)
    except (OSError, CryptoError):
        raise FileIntegrityError("preview failed authentication") from None
    return image, stored.preview_type


def files_viewable(*, reader: User, files: list[StoredFile]) -> list[FileView]:
    """Views of ``files`` that ``reader`` can open (a page of a list)."""
    views = []
    for stored in files:
        try:
            views.append(file_view(reader=reader, stored=stored))
        except (Http404, FileIntegrityError):
            continue
    return views


def file_blobs_missing(stored: StoredFile) -> list[int]:
    """The first chunk counters of the file's segments that storage does not hold."""
    return [
        int(start)
        for start in stored.segment_starts
        if not blobs.blob_exists(blobs.segment_name(stored.blob_prefix, int(start)))
    ]


def reader_may_read(*, user_id: int, room_id: int) -> bool:
    """Whether the user, as the database says now, is active and may view the room."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    return user is not None and rooms_for_user(user=user).filter(pk=room_id).exists()


def file_download_stream(
    *,
    reader: User,
    stored: StoredFile,
    first: int = 0,
    last: int | None = None,
    still_allowed: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """The plaintext of bytes ``first``..``last`` (inclusive; default: to the end).

    Memory: one chunk. Only the chunks that hold the range are read and decrypted. The
    reader's right (active, member, and ``still_allowed``, e.g. their session) is checked
    again every ``RECHECK_CHUNKS`` chunks or ``RECHECK_SECONDS``: once it is gone the
    stream raises ``DownloadCutError``. A chunk that fails authentication (tampered,
    reordered, truncated, missing blob) raises ``FileIntegrityError`` before any of its
    bytes are yielded, and is audited as ``file.integrity.failed``.
    """
    key = _key_for(reader=reader, stored=stored)
    size = chunk_size_of(stored)
    end = stored.declared_length - 1 if last is None else min(last, stored.declared_length - 1)
    if stored.declared_length == 0 or end < first:
        first_chunk, last_chunk, skip, wanted = 0, 0, 0, 0
    else:
        first_chunk, last_chunk = first // size, end // size
        skip, wanted = first - first_chunk * size, end - first + 1

    def allowed() -> bool:
        if not reader_may_read(user_id=reader.pk, room_id=stored.room_id):
            return False
        return still_allowed is None or still_allowed()

    checked_at, chunks_since = time.monotonic(), 0
    sent = 0
    try:
        for piece in decrypted_chunks(stored, key, first_chunk=first_chunk, last_chunk=last_chunk):
            chunks_since += max(1, len(piece) // size)
            if chunks_since >= RECHECK_CHUNKS or time.monotonic() - checked_at >= RECHECK_SECONDS:
                if not allowed():
                    raise DownloadCutError("access ended")
                checked_at, chunks_since = time.monotonic(), 0
            if skip:
                piece, skip = piece[skip:], max(0, skip - len(piece))
            piece = piece[: wanted - sent]
            if piece:
                sent += len(piece)
                yield piece
            if sent >= wanted:
                return
    except FileIntegrityError as exc:
        file_integrity_failure_record(reader=reader, stored=stored, reason=exc.reason)
        raise
    if sent < wanted:
        file_integrity_failure_record(reader=reader, stored=stored, reason="stream short")
        raise FileIntegrityError("stream short")
