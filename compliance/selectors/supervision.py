"""Reads of supervision review: the queue, one item opened, the officer's figures.

Only holders of ``compliance.supervise`` read any of it, and nobody sees the items of
messages they sent: the queue leaves them out and opening one is refused (audited
``supervision.action.refused``). Opening an item decrypts its message through the
compliance key, on the record as ONE ``supervision.item.viewed`` event naming the item,
the message and the revision (never the content); the reviewers' sealed notes are opened
with the same key in the same read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from accounts.models import User
from audit.actions import AuditAction
from compliance.lexicon import text_normalise
from compliance.models import SupervisionItem, SupervisionTerm
from compliance.services._common import refused
from compliance.services.supervision import NOTE_FIELDS, SUPERVISE, hits_open, note_open
from rooms.models import Message, MessageRevision
from safechat.crypto import CryptoError, SymmetricKey
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import compliance_epoch_keys, message_decrypt_with_key


@dataclass(frozen=True)
class ItemHit:
    lexicon: str
    term: str
    start: int
    end: int
    fragment: str


NOTE_SHREDDED = "the note can no longer be read: its epoch key was destroyed by retention"
NOTE_TAMPERED = "the note can no longer be read: it failed its integrity check"


@dataclass(frozen=True)
class OpenedNote:
    """A reviewer's note as a supervisor reads it: ``text``, or None and ``problem``
    saying plainly why it cannot be read."""

    text: str | None
    problem: str = ""


@dataclass(frozen=True)
class OpenedItem:
    """An item as its reviewer reads it. ``status``: ``ok``, ``purged`` (retention took the
    message; its tombstone remains), ``shredded`` or ``integrity failure``. ``text`` is the
    revision reviewed, NFKC-normalised as it was matched (hit offsets point into it).
    ``escalation_note`` and ``close_reason``: the decisions' notes opened, None when the
    item has none."""

    item: SupervisionItem
    status: str
    text: str | None
    hits: list[ItemHit]
    current_revision: int | None
    escalation_note: OpenedNote | None = None
    close_reason: OpenedNote | None = None


def _note(
    key: SymmetricKey | IntegrityFailure | None, item: SupervisionItem, field: str
) -> OpenedNote | None:
    if not bytes(getattr(item, f"{field}_sealed") or b""):
        return None
    if key is None:
        return OpenedNote(None, NOTE_SHREDDED)
    if isinstance(key, IntegrityFailure):
        return OpenedNote(None, NOTE_TAMPERED)
    try:
        return OpenedNote(note_open(key=key, item=item, field=field))
    except (CryptoError, UnicodeDecodeError):
        # Sealed under a key dropped at once (the decision came after the shred) or moved.
        return OpenedNote(None, NOTE_TAMPERED)


def _require_supervisor(officer: User) -> None:
    if not (officer.is_active and officer.has_perm(SUPERVISE)):
        raise PermissionDenied("only a compliance officer reviews supervision items")


def supervision_queue(
    *, officer: User, states: tuple[str, ...] = ("pending", "escalated")
) -> QuerySet[SupervisionItem]:
    """The items in ``states`` the officer may review (never their own messages'),
    oldest first. Raises ``PermissionDenied`` without ``compliance.supervise``."""
    _require_supervisor(officer)
    return (
        SupervisionItem.objects.filter(state__in=states)
        .exclude(sender=officer)
        .select_related("room", "sender")
        .order_by("pk")
    )


def supervision_item_open(*, officer: User, item: SupervisionItem) -> OpenedItem:
    """Decrypt ``item``'s message revision, its hits and its reviewers' notes through the
    compliance key.

    One ``supervision.item.viewed`` event, recorded before any key is opened and kept
    whatever follows. A note whose epoch retention shredded reads as ``NOTE_SHREDDED``.
    Raises ``PermissionDenied`` without ``compliance.supervise``, and a
    ``ComplianceRefused`` (recorded) for an item of the officer's own message."""
    _require_supervisor(officer)
    if item.sender_id == officer.pk:
        refusal = refused(
            actor=officer,
            action=AuditAction.SUPERVISION_ACTION_REFUSED,
            target=item,
            reason="own message",
            message="nobody reviews their own messages",
            decision="view",
        )
        refusal.record()
        raise refusal
    message = Message.objects.filter(pk=item.message_id).first()
    noted = any(bytes(getattr(item, f"{field}_sealed") or b"") for field in NOTE_FIELDS)
    keys = compliance_epoch_keys(
        actor=officer,
        epochs=[(item.room_id, item.epoch)] if message is not None or noted else [],
        action=AuditAction.SUPERVISION_ITEM_VIEWED,
        target=item,
        extra={"item": item.pk, "message_id": item.message_id, "revision": item.revision},
    )
    key = keys.get((item.room_id, item.epoch))
    return replace(
        _opened(item=item, message=message, key=key),
        escalation_note=_note(key, item, "escalation_note"),
        close_reason=_note(key, item, "close_reason"),
    )


def supervision_epoch_shredded(*, item: SupervisionItem) -> bool:
    """Whether retention destroyed the key of ``item``'s epoch (a note given now is kept
    sealed but can never be read). Metadata only: opens no key."""
    return RoomEpoch.objects.filter(
        room_id=item.room_id, number=item.epoch, shredded_at__isnull=False
    ).exists()


def _opened(
    *,
    item: SupervisionItem,
    message: Message | None,
    key: SymmetricKey | IntegrityFailure | None,
) -> OpenedItem:
    if message is None:
        return OpenedItem(item, "purged", None, [], None)
    if key is None:
        return OpenedItem(item, "shredded", None, [], message.revision)
    if isinstance(key, IntegrityFailure):
        return OpenedItem(item, "integrity failure", None, [], message.revision)
    stored: Message | MessageRevision | None = message
    if message.revision != item.revision:
        stored = MessageRevision.objects.filter(message=message, revision=item.revision).first()
    if stored is None:
        return OpenedItem(item, "purged", None, [], message.revision)
    try:
        text = message_decrypt_with_key(
            key=key,
            room_id=message.room_id,
            message_uid=message.uid,
            epoch=stored.epoch,
            sender_id=message.sender_id,
            ciphertext=bytes(stored.ciphertext),
            revision=stored.revision,
        )
        raw_hits = hits_open(key=key, message=message, item=item)
    except (IntegrityFailure, CryptoError, ValueError, KeyError):
        return OpenedItem(item, "integrity failure", None, [], message.revision)
    normalised = text_normalise(text)
    terms = {
        t.pk: t
        for t in SupervisionTerm.objects.filter(pk__in={h[0] for h in raw_hits}).select_related(
            "lexicon"
        )
    }
    hits = [
        ItemHit(
            lexicon=terms[term_id].lexicon.name if term_id in terms else "?",
            term=terms[term_id].value if term_id in terms else "?",
            start=start,
            end=end,
            fragment=normalised[start:end],
        )
        for term_id, start, end in raw_hits
    ]
    return OpenedItem(item, "ok", normalised, hits, message.revision)
