"""Content review: a room's or a custodian's messages as a compliance officer reads them.

Every page is opened through the compliance key (``safechat.keyring.services.
compliance_epoch_keys``) and is on the record as ONE ``compliance.content.viewed`` event
naming what was shown: the room or custodian, the cursor and page size, how many items,
the first and last message id (or membership change id), and the epochs opened; never
content. A page is at most ``REVIEW_PAGE_MAX`` messages, with their revisions, reactions
and files read for those ids only, so memory is bounded whatever the room's size.

What a page holds (ascending message id, the rooms' order of writing):

* every message, deleted ones included, with every earlier text (``MessageRevision``),
  its reactions and the file it shares (name and type decrypted, size, state);
* the purge tombstones whose ids fall in the page's span (a room's review only: a
  tombstone keeps no sender, so a custodian's review cannot attribute it);
* membership changes are a page of their own (``ReviewKind.MEMBERSHIP``), from the rooms'
  change feed (``RoomChange``), ascending by its id.

A text whose key or ciphertext fails its integrity check is shown as
``TextStatus.INTEGRITY`` (the keyring audits the failure), one whose epoch key was
shredded as ``TextStatus.SHREDDED``: never an exception for the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import AuditTarget
from compliance.models import MessageTombstone
from files.content import file_open_with_epoch_key
from files.models import StoredFile
from rooms.models import Message, MessageRevision, Reaction, Room, RoomChange
from safechat.crypto import CryptoError, SymmetricKey
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.services import (
    compliance_epoch_keys,
    message_decrypt_with_key,
)

REVIEW_CONTENT = "compliance.review_content"
REVIEW_PAGE_DEFAULT = 50
REVIEW_PAGE_MAX = 100
MEMBERSHIP_KINDS = (
    RoomChange.Kind.MEMBER_ADDED,
    RoomChange.Kind.MEMBER_REMOVED,
    RoomChange.Kind.MEMBER_ROLE_CHANGED,
)


class ReviewKind(StrEnum):
    MESSAGES = "messages"
    MEMBERSHIP = "membership"


class TextStatus(StrEnum):
    OK = "ok"
    SHREDDED = "shredded"  # no compliance copy of the epoch key is left
    INTEGRITY = "integrity failure"  # a sealed key, its MAC or the ciphertext did not verify


@dataclass(frozen=True)
class ReviewText:
    """One text of a message: ``revision`` 0 is the first; the highest is the current."""

    revision: int
    epoch: int
    written_at: datetime
    text: str | None
    status: TextStatus


@dataclass(frozen=True)
class ReviewFile:
    id: int
    state: str
    size: int
    created_at: datetime
    deleted_at: datetime | None
    name: str | None
    content_type: str | None
    status: TextStatus


@dataclass(frozen=True)
class ReviewMessage:
    id: int
    room_id: int
    room_name: str
    seq: int
    sender: str
    parent_id: int | None
    sent_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None
    texts: list[ReviewText]  # every revision, oldest first, the current one last
    reactions: list[tuple[str, str, datetime]] = field(default_factory=list)
    file: ReviewFile | None = None
    kind: str = "message"


@dataclass(frozen=True)
class ReviewTombstone:
    id: int  # the purged message's id
    room_id: int
    seq: int
    sent_at: datetime
    purged_at: datetime
    run_id: int
    kind: str = "tombstone"


@dataclass(frozen=True)
class ReviewMembershipChange:
    id: int
    room_id: int
    change: str
    person: str
    role: str
    occurred_at: datetime


@dataclass(frozen=True)
class ReviewPage:
    """One page of a review, ascending; ``next_after`` continues it (None: the end)."""

    kind: ReviewKind
    items: list[ReviewMessage | ReviewTombstone | ReviewMembershipChange]
    next_after: int | None

    @property
    def message_count(self) -> int:
        return sum(1 for item in self.items if isinstance(item, ReviewMessage))


def _target(row: Room | User) -> AuditTarget:
    """The audit target of a review: the room or person itself, also when the admin hands
    over its proxy (``RoomReview``, ``CustodianReview``), so the log names ``rooms.room``."""
    concrete = row._meta.concrete_model
    assert concrete is not None  # noqa: S101 - a model class always has one
    return AuditTarget(type=concrete._meta.label_lower, id=str(row.pk))


def _require_reviewer(officer: User) -> None:
    if not (officer.is_active and officer.has_perm(REVIEW_CONTENT)):
        raise PermissionDenied("only a compliance officer reviews content")


def _limit(limit: int) -> int:
    return max(1, min(limit, REVIEW_PAGE_MAX))


Keys = dict[tuple[int, int], SymmetricKey | IntegrityFailure | None]
Row = TypeVar("Row", bound=Model)


def stored_text_decrypt(
    key: SymmetricKey, message: Message, stored: Message | MessageRevision
) -> str:
    """The text of ``message`` as ``stored`` (the message itself or one of its revisions),
    decrypted with its epoch's key (one that ``compliance_epoch_keys`` opened).

    Raises ``IntegrityFailure`` when the ciphertext is not this message's, by this sender,
    in this epoch and revision.
    """
    return message_decrypt_with_key(
        key=key,
        room_id=message.room_id,
        message_uid=message.uid,
        epoch=stored.epoch,
        sender_id=message.sender_id,
        ciphertext=bytes(stored.ciphertext),
        revision=stored.revision,
    )


def _open(
    keys: Keys,
    message: Message,
    stored: Message | MessageRevision,
) -> tuple[str | None, TextStatus]:
    key = keys.get((message.room_id, stored.epoch))
    if key is None:
        return None, TextStatus.SHREDDED
    if isinstance(key, IntegrityFailure):
        return None, TextStatus.INTEGRITY
    try:
        text = stored_text_decrypt(key, message, stored)
    except IntegrityFailure:
        return None, TextStatus.INTEGRITY
    return text, TextStatus.OK


def _file(keys: Keys, stored: StoredFile) -> ReviewFile:
    name: str | None = None
    content_type: str | None = None
    status = TextStatus.SHREDDED
    key = keys.get((stored.room_id, stored.epoch))
    if isinstance(key, IntegrityFailure):
        status = TextStatus.INTEGRITY
    elif key is not None:
        try:
            _, metadata = file_open_with_epoch_key(stored, key)
            name, content_type, status = metadata.name, metadata.content_type, TextStatus.OK
        except (CryptoError, ValueError, KeyError):
            status = TextStatus.INTEGRITY
    return ReviewFile(
        id=stored.pk,
        state=stored.state,
        size=stored.declared_length,
        created_at=stored.created_at,
        deleted_at=stored.deleted_at,
        name=name,
        content_type=content_type,
        status=status,
    )


def _page_rows(rows: QuerySet[Row], limit: int) -> tuple[list[Row], bool]:
    """The first ``limit`` of ``rows`` (already filtered and ordered), and whether more
    follow; reads at most ``limit + 1``."""
    page = list(rows[: limit + 1])
    return page[:limit], len(page) > limit


def _viewed(
    *,
    officer: User,
    epochs: list[tuple[int, int]],
    target: AuditTarget,
    scope: dict[str, object],
    kind: ReviewKind,
    after: int,
    limit: int,
    counts: dict[str, int],
    shown: list[int],
) -> Keys:
    """Open ``epochs``' keys for ``officer``, on the record as the page's one
    ``compliance.content.viewed`` event (``scope``, ``kind``, ``after``, ``limit``,
    ``counts``, and the first and last of the ``shown`` ids, ascending)."""
    return compliance_epoch_keys(
        actor=officer,
        epochs=epochs,
        action=AuditAction.COMPLIANCE_CONTENT_VIEWED,
        target=target,
        extra={
            **scope,
            "kind": kind.value,
            "after": after,
            "limit": limit,
            **counts,
            "first_id": shown[0] if shown else None,
            "last_id": shown[-1] if shown else None,
        },
    )


def _message_page(
    *,
    officer: User,
    messages_q: Q,
    tombstones_q: Q | None,
    target: AuditTarget,
    scope: dict[str, object],
    after: int,
    limit: int,
) -> ReviewPage:
    limit = _limit(limit)
    rows, more = _page_rows(
        Message.objects.filter(messages_q, pk__gt=after)
        .select_related("room", "sender", "deleted_by")
        .order_by("pk"),
        limit,
    )
    upper = rows[-1].pk if more else None
    tombstones: list[MessageTombstone] = []
    if tombstones_q is not None:
        found = MessageTombstone.objects.filter(tombstones_q, message_id__gt=after)
        if upper is not None:
            found = found.filter(message_id__lte=upper)
        # Bounded too: the page never holds more than ``limit`` tombstones either.
        tombstones = list(found.order_by("message_id")[:limit])
        if len(tombstones) == limit and (upper is None or tombstones[-1].message_id < upper):
            upper = tombstones[-1].message_id
            rows = [row for row in rows if row.pk <= upper]
            more = True
    ids = [row.pk for row in rows]
    revisions: dict[int, list[MessageRevision]] = {}
    for revision in MessageRevision.objects.filter(message_id__in=ids).order_by("revision"):
        revisions.setdefault(revision.message_id, []).append(revision)
    reactions: dict[int, list[tuple[str, str, datetime]]] = {}
    for reaction in (
        Reaction.objects.filter(message_id__in=ids).select_related("user").order_by("pk")
    ):
        reactions.setdefault(reaction.message_id, []).append(
            (reaction.emoji, reaction.user.get_username(), reaction.created_at)
        )
    files = {f.message_id: f for f in StoredFile.objects.filter(message_id__in=ids)}
    epochs = {(row.room_id, row.epoch) for row in rows}
    epochs |= {(row.room_id, r.epoch) for row in rows for r in revisions.get(row.pk, [])}
    epochs |= {(f.room_id, f.epoch) for f in files.values()}
    items: list[ReviewMessage | ReviewTombstone | ReviewMembershipChange] = [
        ReviewTombstone(
            id=t.message_id,
            room_id=t.room_id,
            seq=t.seq,
            sent_at=t.sent_at,
            purged_at=t.purged_at,
            run_id=t.run_id,
        )
        for t in tombstones
    ]
    shown = sorted(ids + [t.message_id for t in tombstones])
    keys = _viewed(
        officer=officer,
        epochs=sorted(epochs),
        target=target,
        scope=scope,
        kind=ReviewKind.MESSAGES,
        after=after,
        limit=limit,
        counts={"messages": len(ids), "tombstones": len(tombstones)},
        shown=shown,
    )
    for row in rows:
        texts = [
            ReviewText(r.revision, r.epoch, r.created_at, *_open(keys, row, r))
            for r in revisions.get(row.pk, [])
        ]
        texts.append(
            ReviewText(
                row.revision, row.epoch, row.edited_at or row.created_at, *_open(keys, row, row)
            )
        )
        items.append(
            ReviewMessage(
                id=row.pk,
                room_id=row.room_id,
                room_name=row.room.name,
                seq=row.seq,
                sender=row.sender.get_username(),
                parent_id=row.parent_id,
                sent_at=row.created_at,
                edited_at=row.edited_at,
                deleted_at=row.deleted_at,
                deleted_by=row.deleted_by.get_username() if row.deleted_by else None,
                texts=texts,
                reactions=reactions.get(row.pk, []),
                file=_file(keys, files[row.pk]) if row.pk in files else None,
            )
        )
    items.sort(key=lambda item: item.id)
    return ReviewPage(kind=ReviewKind.MESSAGES, items=items, next_after=upper if more else None)


def _membership_page(
    *,
    officer: User,
    changes_q: Q,
    target: AuditTarget,
    scope: dict[str, object],
    after: int,
    limit: int,
) -> ReviewPage:
    limit = _limit(limit)
    rows, more = _page_rows(
        RoomChange.objects.filter(changes_q, kind__in=MEMBERSHIP_KINDS, pk__gt=after).order_by(
            "pk"
        ),
        limit,
    )
    people = dict(
        User.objects.filter(pk__in={r.user_id for r in rows if r.user_id}).values_list(
            "pk", "username"
        )
    )
    # No key is opened for membership: still one event naming what was shown.
    _viewed(
        officer=officer,
        epochs=[],
        target=target,
        scope=scope,
        kind=ReviewKind.MEMBERSHIP,
        after=after,
        limit=limit,
        counts={"changes": len(rows)},
        shown=[r.pk for r in rows],
    )
    items: list[ReviewMessage | ReviewTombstone | ReviewMembershipChange] = [
        ReviewMembershipChange(
            id=r.pk,
            room_id=r.room_id,
            change=r.kind,
            person=people.get(r.user_id or 0, f"#{r.user_id}"),
            role=r.role,
            occurred_at=r.occurred_at,
        )
        for r in rows
    ]
    return ReviewPage(
        kind=ReviewKind.MEMBERSHIP, items=items, next_after=rows[-1].pk if more else None
    )


def _review_page(
    *,
    officer: User,
    kind: ReviewKind,
    subject: Room | User,
    scope: dict[str, object],
    messages_q: Q,
    tombstones_q: Q | None,
    changes_q: Q,
    after: int,
    limit: int,
) -> ReviewPage:
    """``content_review_room``'s and ``content_review_custodian``'s page of ``subject``:
    refused (PermissionDenied, nothing read or recorded) unless ``officer`` reviews
    content; else the messages (``messages_q``, with ``tombstones_q``'s tombstones) or the
    membership changes (``changes_q``) ``kind`` names."""
    _require_reviewer(officer)
    if kind is ReviewKind.MEMBERSHIP:
        return _membership_page(
            officer=officer, changes_q=changes_q, target=_target(subject), scope=scope,
            after=after, limit=limit,
        )  # fmt: skip
    return _message_page(
        officer=officer,
        messages_q=messages_q,
        tombstones_q=tombstones_q,
        target=_target(subject),
        scope=scope,
        after=after,
        limit=limit,
    )


def content_review_room(
    *,
    officer: User,
    room: Room,
    kind: ReviewKind = ReviewKind.MESSAGES,
    after: int = 0,
    limit: int = REVIEW_PAGE_DEFAULT,
) -> ReviewPage:
    """A page of ``room`` for ``officer`` (``compliance.review_content``), from message
    (or membership change) id ``after`` on, ascending, at most ``limit`` (1 to
    ``REVIEW_PAGE_MAX``) messages and as many tombstones.

    Raises PermissionDenied (nothing read, nothing recorded) for anyone without the
    permission. Otherwise records exactly one ``compliance.content.viewed`` event
    (module docstring) before any key is opened.
    """
    return _review_page(
        officer=officer,
        kind=kind,
        subject=room,
        scope={"room": room.pk},
        messages_q=Q(room_id=room.pk),
        tombstones_q=Q(room_id=room.pk),
        changes_q=Q(room_id=room.pk),
        after=after,
        limit=limit,
    )


def content_review_custodian(
    *,
    officer: User,
    custodian: User,
    kind: ReviewKind = ReviewKind.MESSAGES,
    after: int = 0,
    limit: int = REVIEW_PAGE_DEFAULT,
) -> ReviewPage:
    """A page of what ``custodian`` sent, in every room (or of their membership changes
    in every room), as ``content_review_room`` pages a room; the same refusal and the same
    one event, its target the custodian."""
    return _review_page(
        officer=officer,
        kind=kind,
        subject=custodian,
        scope={"custodian": custodian.pk},
        messages_q=Q(sender_id=custodian.pk),
        tombstones_q=None,
        changes_q=Q(user_id=custodian.pk),
        after=after,
        limit=limit,
    )
