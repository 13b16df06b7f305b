"""Build an approved export's archive as a stream of tar bytes, a batch at a time.

Memory is bounded by one batch (``BATCH`` messages with their revisions, reactions and
one shared file at a time) plus the manifest's list of items; nothing is written in
plaintext anywhere: the caller encrypts the stream as it is produced.

What is in scope (``ExportScope``): messages in the named rooms, sent by the custodians
anywhere, or in the custodians' direct conversations, written within the range (sent
before its end and last written at or after its start, as a legal hold counts); the purge
tombstones of those rooms sent within the range; the membership changes of those rooms,
or of the custodians, within the range.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from django.db.models import Q, QuerySet

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.ediscovery_format import (
    FORMAT,
    MANIFEST,
    SIGNATURE,
    canonical,
    signed_bytes,
    tar_end,
    tar_member,
)
from audit.signing import signing_key
from compliance.models import ExportRequest, MessageTombstone
from compliance.selectors import day_start
from compliance.selectors.review import MEMBERSHIP_KINDS, stored_text_decrypt
from files.content import FileIntegrityError, decrypted_chunks, file_open_with_epoch_key
from files.models import StoredFile
from rooms.models import Membership, Message, MessageRevision, Reaction, Room, RoomChange
from safechat.crypto import CryptoError, SymmetricKey
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.services import compliance_epoch_keys

BATCH = 200
EPOCHS_PER_READ = 100  # pairs named by one ``export.read`` event (its ``extra`` is bounded)
MAIL_DOMAIN = "safechat.invalid"  # RFC 2606: addresses that name people, never deliverable

Keys = dict[tuple[int, int], SymmetricKey | IntegrityFailure | None]


@dataclass(frozen=True)
class ExportScope:
    export_id: int
    rooms: frozenset[int]
    custodians: frozenset[int]
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def of(cls, export: ExportRequest) -> ExportScope:
        custodians = frozenset(export.custodians.values_list("pk", flat=True))
        direct = frozenset(
            Membership.objects.filter(
                user_id__in=custodians, room__kind=Room.Kind.DIRECT
            ).values_list("room_id", flat=True)
        )
        return cls(
            export_id=export.pk,
            rooms=frozenset(export.rooms.values_list("pk", flat=True)) | direct,
            custodians=custodians,
            start=day_start(export.starts_on),
            end=day_start(export.ends_on) + timedelta(days=1),
        )

    def messages(self) -> QuerySet[Message]:
        who = Q(room_id__in=sorted(self.rooms)) | Q(sender_id__in=sorted(self.custodians))
        # Written within the range: sent before its end, last written (edited, else sent)
        # at or after its start, as a legal hold counts (``messages_with_last_write``).
        last_written_in = Q(edited_at__gte=self.start) | Q(
            edited_at__isnull=True, created_at__gte=self.start
        )
        return Message.objects.filter(who, last_written_in, created_at__lt=self.end)


@dataclass
class ArchiveStats:
    messages: int = 0
    revisions: int = 0
    files: int = 0
    tombstones: int = 0
    memberships: int = 0
    integrity_failures: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    manifest_sha256: str = ""


def read_parts(
    needs: list[tuple[int, set[tuple[int, int]]]],
) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """A batch's reads: ``needs`` (message id, the (room, epoch) pairs it needs), in order,
    cut into parts of at most ``EPOCHS_PER_READ`` new pairs, each (its message ids, its
    pairs ascending), so that one ``export.read`` event's list of epochs stays within the
    audit log's size for ``extra`` however many epochs a batch spans. Every pair is in
    exactly one part; a message that alone needs more pairs than that spans several
    parts, each naming it."""
    parts: list[tuple[list[int], list[tuple[int, int]]]] = []
    ids: list[int] = []
    pairs: set[tuple[int, int]] = set()
    seen: set[tuple[int, int]] = set()
    for message_id, wanted in needs:
        fresh = sorted(wanted - seen)
        seen |= wanted
        if ids and len(pairs) + len(fresh) > EPOCHS_PER_READ:
            parts.append((ids, sorted(pairs)))
            ids, pairs = [], set()
        while len(fresh) > EPOCHS_PER_READ:
            parts.append(([message_id], fresh[:EPOCHS_PER_READ]))
            fresh = fresh[EPOCHS_PER_READ:]
        ids.append(message_id)
        pairs.update(fresh)
    if ids:
        parts.append((ids, sorted(pairs)))
    return parts


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class _Builder:
    def __init__(self, *, export: ExportRequest, actor: SystemActor | User) -> None:
        self.export = export
        self.scope = ExportScope.of(export)
        self.actor = actor
        self.stats = ArchiveStats()
        self.mtime = int(datetime.now().timestamp())  # noqa: DTZ005 - a POSIX time
        self.records_seq = 0

    def member(self, path: str, data: bytes) -> Iterator[bytes]:
        self.stats.items.append(
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
        yield from tar_member(path, data, mtime=self.mtime)

    def records(self, lines: list[dict[str, Any]]) -> Iterator[bytes]:
        if not lines:
            return
        self.records_seq += 1
        body = b"".join(canonical(line) + b"\n" for line in lines)
        yield from self.member(f"records/{self.records_seq:06d}.jsonl", body)

    def open_text(
        self, keys: Keys, message: Message, stored: Message | MessageRevision
    ) -> tuple[str | None, str]:
        key = keys.get((message.room_id, stored.epoch))
        if key is None:
            return None, "shredded"
        if isinstance(key, IntegrityFailure):
            self.stats.integrity_failures += 1
            return None, "integrity failure"
        try:
            return stored_text_decrypt(key, message, stored), "ok"
        except IntegrityFailure:
            self.stats.integrity_failures += 1
            return None, "integrity failure"

    def open_file(self, keys: Keys, stored: StoredFile) -> tuple[dict[str, Any], bytes | None]:
        record: dict[str, Any] = {
            "type": "file",
            "id": stored.pk,
            "message": stored.message_id,
            "room": stored.room_id,
            "uploader": stored.uploader_id,
            "state": stored.state,
            "size": stored.declared_length,
            "uploaded_at": _time(stored.created_at),
            "deleted_at": _time(stored.deleted_at),
        }
        key = keys.get((stored.room_id, stored.epoch))
        if not isinstance(key, SymmetricKey):
            record["status"] = "shredded" if key is None else "integrity failure"
            return record, None
        try:
            file_key, meta = file_open_with_epoch_key(stored, key)
            content = b"".join(decrypted_chunks(stored, file_key))
        except (CryptoError, FileIntegrityError, ValueError, KeyError, OSError):
            self.stats.integrity_failures += 1
            record["status"] = "integrity failure"
            return record, None
        record.update(
            name=meta.name,
            content_type=meta.content_type,
            sha256=hashlib.sha256(content).hexdigest(),
            status="ok",
        )
        return record, content

    def eml(
        self,
        message: Message,
        text: str | None,
        status: str,
        file: tuple[dict[str, Any], bytes | None] | None,
    ) -> bytes:
        mail = EmailMessage(policy=SMTP)
        sender = message.sender
        mail["From"] = Address(
            display_name=sender.get_full_name() or sender.get_username(),
            username=f"user-{sender.pk}",
            domain=MAIL_DOMAIN,
        )
        mail["To"] = Address(
            display_name=message.room.name, username=f"room-{message.room_id}", domain=MAIL_DOMAIN
        )
        mail["Subject"] = f"[{message.room.name}] message {message.pk}"
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = f"<{message.uid}@{MAIL_DOMAIN}>"
        if message.parent is not None:
            parent = f"<{message.parent.uid}@{MAIL_DOMAIN}>"
            mail["In-Reply-To"] = parent
            mail["References"] = parent
        mail["X-SafeChat-Message"] = str(message.pk)
        mail["X-SafeChat-Room"] = str(message.room_id)
        mail["X-SafeChat-Revision"] = str(message.revision)
        if message.deleted_at is not None:
            mail["X-SafeChat-Deleted"] = format_datetime(message.deleted_at)
        mail.set_content(text if text is not None else f"[{status}]")
        if file is not None and file[1] is not None:
            record, content = file
            maintype, _, subtype = str(record.get("content_type") or "").partition("/")
            mail.add_attachment(
                content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=str(record.get("name") or f"file-{record['id']}"),
            )
        return mail.as_bytes()

    def batch(self, rows: list[Message]) -> Iterator[bytes]:
        ids = [row.pk for row in rows]
        revisions: dict[int, list[MessageRevision]] = {}
        for revision in MessageRevision.objects.filter(message_id__in=ids).order_by("revision"):
            revisions.setdefault(revision.message_id, []).append(revision)
        files = {f.message_id: f for f in StoredFile.objects.filter(message_id__in=ids)}
        needs: list[tuple[int, set[tuple[int, int]]]] = []
        for row in rows:
            epochs = {(row.room_id, row.epoch)}
            epochs |= {(row.room_id, r.epoch) for r in revisions.get(row.pk, [])}
            if row.pk in files:
                epochs.add((files[row.pk].room_id, files[row.pk].epoch))
            needs.append((row.pk, epochs))
        keys: Keys = {}
        for part_ids, part_epochs in read_parts(needs):
            keys.update(
                compliance_epoch_keys(
                    actor=self.actor,
                    epochs=part_epochs,
                    action=AuditAction.EXPORT_READ,
                    target=self.export,
                    extra={
                        "messages": len(part_ids),
                        "first_id": part_ids[0],
                        "last_id": part_ids[-1],
                    },
                )
            )
        lines: list[dict[str, Any]] = []
        mails: list[tuple[int, bytes]] = []
        for row in rows:
            base = {"message": row.pk, "room": row.room_id, "seq": row.seq, "sender": row.sender_id}
            text: str | None = None
            status = "ok"
            texts: list[Message | MessageRevision] = [*revisions.get(row.pk, []), row]
            for stored in texts:
                text, status = self.open_text(keys, row, stored)
                written = (
                    stored.created_at if stored is not row else (row.edited_at or row.created_at)
                )
                lines.append(
                    {
                        "type": "message.text",
                        **base,
                        "revision": stored.revision,
                        "epoch": stored.epoch,
                        "written_at": _time(written),
                        "current": stored is row,
                        "parent": row.parent_id,
                        "text": text,
                        "status": status,
                    }
                )
                self.stats.revisions += stored is not row
            if row.deleted_at is not None:
                lines.append(
                    {"type": "message.deleted", **base, "deleted_at": _time(row.deleted_at),
                     "deleted_by": row.deleted_by_id}
                )  # fmt: skip
            file = self.open_file(keys, files[row.pk]) if row.pk in files else None
            if file is not None:
                lines.append(file[0])
                self.stats.files += 1
            mails.append((row.pk, self.eml(row, text, status, file)))
            self.stats.messages += 1
        for reaction in Reaction.objects.filter(message_id__in=ids).order_by("pk"):
            lines.append(
                {"type": "reaction", "message": reaction.message_id, "emoji": reaction.emoji,
                 "by": reaction.user_id, "at": _time(reaction.created_at)}
            )  # fmt: skip
        yield from self.records(lines)
        for pk, mail in mails:
            yield from self.member(f"messages/{pk}.eml", mail)

    def tombstones(self) -> Iterator[bytes]:
        found = MessageTombstone.objects.filter(
            room_id__in=sorted(self.scope.rooms),
            sent_at__gte=self.scope.start,
            sent_at__lt=self.scope.end,
        ).order_by("message_id")
        lines: list[dict[str, Any]] = []
        for t in found.iterator(chunk_size=BATCH):
            lines.append(
                {"type": "tombstone", "message": t.message_id, "room": t.room_id, "seq": t.seq,
                 "sent_at": _time(t.sent_at), "purged_at": _time(t.purged_at), "run": t.run_id}
            )  # fmt: skip
            self.stats.tombstones += 1
            if len(lines) == BATCH:
                yield from self.records(lines)
                lines = []
        yield from self.records(lines)

    def memberships(self) -> Iterator[bytes]:
        found = RoomChange.objects.filter(
            Q(room_id__in=sorted(self.scope.rooms)) | Q(user_id__in=sorted(self.scope.custodians)),
            kind__in=MEMBERSHIP_KINDS,
            occurred_at__gte=self.scope.start,
            occurred_at__lt=self.scope.end,
        ).order_by("pk")
        lines: list[dict[str, Any]] = []
        for c in found.iterator(chunk_size=BATCH):
            lines.append(
                {"type": "membership", "id": c.pk, "room": c.room_id, "change": c.kind,
                 "person": c.user_id, "role": c.role, "at": _time(c.occurred_at)}
            )  # fmt: skip
            self.stats.memberships += 1
            if len(lines) == BATCH:
                yield from self.records(lines)
                lines = []
        yield from self.records(lines)

    def stream(self) -> Iterator[bytes]:
        after = 0
        messages = self.scope.messages().select_related("room", "sender", "parent")
        while True:
            rows = list(messages.filter(pk__gt=after).order_by("pk")[:BATCH])
            if not rows:
                break
            yield from self.batch(rows)
            after = rows[-1].pk
        yield from self.tombstones()
        yield from self.memberships()
        manifest = canonical(
            {
                "format": FORMAT,
                "export": self.export.pk,
                "matter": self.export.matter,
                "scope_digest": self.export.scope_digest,
                "rooms": sorted(self.scope.rooms),
                "custodians": sorted(self.scope.custodians),
                "starts_on": self.export.starts_on.isoformat(),
                "ends_on": self.export.ends_on.isoformat(),
                "counts": {
                    "messages": self.stats.messages,
                    "revisions": self.stats.revisions,
                    "files": self.stats.files,
                    "tombstones": self.stats.tombstones,
                    "memberships": self.stats.memberships,
                    "integrity_failures": self.stats.integrity_failures,
                },
                "items": self.stats.items,
            }
        )
        self.stats.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        signature = base64.b64encode(signing_key().sign(signed_bytes(manifest)))
        yield from tar_member(MANIFEST, manifest, mtime=self.mtime)
        yield from tar_member(SIGNATURE, signature, mtime=self.mtime)
        yield tar_end()


def archive_stream(
    *, export: ExportRequest, actor: SystemActor | User
) -> tuple[Iterator[bytes], Callable[[], ArchiveStats]]:
    """The archive's bytes (lazily: each batch is read, decrypted and dropped in turn), and
    a function that returns its counts once the stream is exhausted. Every batch's keys
    are opened through the compliance key in reads of at most ``EPOCHS_PER_READ`` epochs,
    each one ``export.read`` audit event naming its messages' ids (count, first, last)
    and the epochs it opened (``read_parts``)."""
    builder = _Builder(export=export, actor=actor)
    return builder.stream(), lambda: builder.stats
