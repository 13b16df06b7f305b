"""Supervision review (FINRA Rule 3110): lexicons, sampling, the matching run, decisions.

Every write here is an ``@action``: it checks ``compliance.supervise`` (read afresh), does
its change in one transaction with its audit event, and refuses (audited
``supervision.action.refused``, nothing changed) with a message for the officer.

A message is matched as it is posted or edited (``supervision_match_posted``, inside the
post's transaction, on the plaintext the post holds in memory). The matching run
(``supervision_run``, the catch-up for messages written before a lexicon changed; the
Celery task ``compliance.supervision_run``, from beat and queued after
``supervision_run_request`` commits) reads what was written
since the previous run in paced batches: each batch's messages are decrypted through the
compliance key (one ``supervision.read`` event), matched in memory against every active
term (``compliance.lexicon``), and the plaintext is dropped; only queue items are stored,
each with its hits encrypted under the message's own epoch key (associated data: purpose
``supervision-hits``, room, message, epoch, revision, sender).

A reviewer's decision (``supervision_item_escalate``, ``supervision_item_close``) carries
a note that often quotes the message, so it is sealed the same way: AES-256-GCM under the
message's epoch key, opened for the purpose through the compliance key, with associated
data naming the item, its message, revision and the field (``note_aad``). Only the
ciphertext is stored; the audit event says that a note was given and its length in
characters, never its text.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from compliance.lexicon import Matcher, Term, TermRefusedError, term_validate
from compliance.models import (
    SupervisionItem,
    SupervisionLexicon,
    SupervisionRun,
    SupervisionSampling,
    SupervisionTerm,
    SupervisionVersion,
)
from compliance.models_supervision import RATE_SCALE
from compliance.services._common import ComplianceRefused, refused, require_text
from compliance.services.retention import Pacer
from rooms.models import Message, MessageRevision, Room
from safechat.actions import action, action_transaction
from safechat.crypto import (
    AdPurpose,
    KeyPurpose,
    SymmetricKey,
    associated_data,
    decrypt,
    encrypt,
)
from safechat.keyring.errors import IntegrityFailure, KeyUnavailableError
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import (
    compliance_epoch_key,
    compliance_epoch_keys,
    message_decrypt_with_key,
    room_epoch_key_for,
)

logger = logging.getLogger(__name__)

SUPERVISE = "compliance.supervise"
SUPERVISION_RUN_TASK = "compliance.supervision_run"
SYSTEM_SUPERVISION = SystemActor("supervision")
NAME_MAX = 120
NOTE_MAX = 2000
LEASE = timedelta(minutes=10)
REFUSAL = AuditAction.SUPERVISION_ACTION_REFUSED

Actor = User | SystemActor


class SupervisionBusyError(ComplianceRefused):
    """Another matching run is working."""


def _require_supervisor(actor: User) -> None:
    fresh = User.objects.filter(pk=actor.pk).first()
    if not (fresh is not None and fresh.is_active and fresh.has_perm(SUPERVISE)):
        raise refused(
            actor=actor,
            action=REFUSAL,
            reason="not allowed",
            message="only a compliance officer can do this",
            permission=SUPERVISE,
        )


# --- lexicons, terms, sampling ---------------------------------------------------


@action
def supervision_lexicon_create(
    *, actor: User, name: str, description: str = ""
) -> SupervisionLexicon:
    """Create an (active) lexicon named ``name``, unique.

    Refused (audited, nothing stored) without ``compliance.supervise``, with an empty or
    over-long name or description, or a name already taken (decided by the unique
    constraint, so two officers at once create one). Locks: the supervision version's row;
    the audit chain."""
    _require_supervisor(actor)
    name = require_text(name, actor=actor, action=REFUSAL, field="name", limit=NAME_MAX)
    description = description.strip() if isinstance(description, str) else ""
    if len(description) > NOTE_MAX:
        raise refused(
            actor=actor,
            action=REFUSAL,
            reason="description too long",
            message=f"the description is longer than {NOTE_MAX} characters",
        )
    try:
        with action_transaction():
            lexicon = SupervisionLexicon.objects.create(
                name=name, description=description, created_by=actor, created_at=timezone.now()
            )
            _version_bump()
            audit_record(
                actor=actor,
                action=AuditAction.SUPERVISION_LEXICON_CREATED,
                target=lexicon,
                extra={"name": name},
            )
    except IntegrityError:
        raise refused(
            actor=actor,
            action=REFUSAL,
            reason="name taken",
            message=f"a lexicon named {name!r} exists already",
        ) from None
    return lexicon


@action
def supervision_lexicon_set_active(
    *, actor: User, lexicon: SupervisionLexicon, active: bool
) -> SupervisionLexicon:
    """Switch a lexicon on or off (its terms and past hits stay): for the next matching run,
    the next post in this process, and posts in every other within
    ``VERSION_CHECK_SECONDS``.
    Refused (audited) without ``compliance.supervise``. Locks: the lexicon's row; the
    supervision version's row; the audit chain."""
    _require_supervisor(actor)
    with action_transaction():
        locked = SupervisionLexicon.objects.select_for_update().get(pk=lexicon.pk)
        previous = locked.active
        locked.active = bool(active)
        locked.save(update_fields=["active"])
        _version_bump()
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_LEXICON_CHANGED,
            target=locked,
            extra={"active": locked.active, "was_active": previous},
        )
    return locked


@action
def supervision_term_add(
    *, actor: User, lexicon: SupervisionLexicon, kind: str, value: str, checksum: str = ""
) -> SupervisionTerm:
    """Add a phrase or an RE2 pattern (with an optional ``luhn`` / ``iban`` check) to
    ``lexicon``; a removed identical term is switched on again.

    Refused (audited, nothing stored) without ``compliance.supervise`` and for a term
    ``compliance.lexicon.term_validate`` refuses: empty, too long, a pattern that does not
    compile in RE2 (back-references, look-arounds), needs too large an automaton, or
    matches the empty text. Locks: the term's row when it exists; the supervision
    version's row; the audit chain."""
    _require_supervisor(actor)
    try:
        cleaned = term_validate(kind=kind, value=value, check=checksum)
    except TermRefusedError as exc:
        raise refused(
            actor=actor,
            action=REFUSAL,
            target=lexicon,
            reason="bad term",
            message=str(exc),
            kind=str(kind)[:20],
        ) from None
    with action_transaction():
        term, created = SupervisionTerm.objects.select_for_update().get_or_create(
            lexicon=lexicon,
            kind=kind,
            value=cleaned,
            checksum=checksum,
            defaults={"created_by": actor, "created_at": timezone.now()},
        )
        if not created:
            term.active = True
            term.save(update_fields=["active"])
        _version_bump()
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_TERM_ADDED,
            target=lexicon,
            extra={"term": term.pk, "kind": kind, "value": cleaned, "checksum": checksum},
        )
    return term


@action
def supervision_term_remove(*, actor: User, term: SupervisionTerm) -> SupervisionTerm:
    """Switch a term off (kept, so past hits still name it). Refused (audited) without
    ``compliance.supervise``. Locks: the term's row; the supervision version's row; the
    audit chain."""
    _require_supervisor(actor)
    with action_transaction():
        locked = SupervisionTerm.objects.select_for_update().get(pk=term.pk)
        locked.active = False
        locked.save(update_fields=["active"])
        _version_bump()
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_TERM_REMOVED,
            target=locked.lexicon,
            extra={"term": locked.pk, "kind": locked.kind, "value": locked.value},
        )
    return locked


@action
def supervision_sampling_set(
    *, actor: User, rate: int, room: Room | None = None, custodian: User | None = None
) -> SupervisionSampling:
    """Set the share of unflagged messages sampled for review, in basis points (0 to
    10,000: 100 is 1%), for the organisation (neither ``room`` nor ``custodian``), a room,
    or a custodian (messages they send). Applies to the next post in this process and
    within ``VERSION_CHECK_SECONDS`` (5 s) in every other (the supervision version).

    Refused (audited, nothing changed) without ``compliance.supervise``, for a rate that
    is not a whole number from 0 to 10,000, or for both a room and a custodian. Locks:
    the rate's row (one per scope: a constraint); the supervision version's row; the audit
    chain."""
    _require_supervisor(actor)
    if room is not None and custodian is not None:
        raise refused(
            actor=actor,
            action=REFUSAL,
            reason="two scopes",
            message="a sampling rate is for a room or for a custodian, not both",
        )
    if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= RATE_SCALE:
        raise refused(
            actor=actor,
            action=REFUSAL,
            reason="bad rate",
            message=f"a sampling rate is a whole number of basis points from 0 to {RATE_SCALE}",
        )
    with action_transaction():
        existing = (
            SupervisionSampling.objects.select_for_update()
            .filter(room=room, custodian=custodian)
            .first()
        )
        previous = existing.rate if existing is not None else None
        if existing is None:
            existing = SupervisionSampling(room=room, custodian=custodian)
        existing.rate = rate
        existing.updated_by = actor
        existing.updated_at = timezone.now()
        existing.save()
        _version_bump()
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_SAMPLING_SET,
            target=room or custodian or existing,
            extra={
                "scope": "room" if room else "custodian" if custodian else "organisation",
                "rate": rate,
                "previous": previous,
            },
        )
    return existing


# --- the matching run ------------------------------------------------------------


@action
def supervision_run_request(*, actor: User) -> None:
    """Ask for a matching run now: recorded as the officer's
    (``supervision.run.requested``), queued after the commit; the run acts as them, their
    right read again before every batch. Refused (audited) without
    ``compliance.supervise``."""
    _require_supervisor(actor)
    with action_transaction():
        audit_record(actor=actor, action=AuditAction.SUPERVISION_RUN_REQUESTED, target=None)
        requester = actor.pk
        transaction.on_commit(lambda: _queue(requester))


def _queue(requested_by: int | None) -> None:
    try:
        current_app.send_task(SUPERVISION_RUN_TASK, kwargs={"requested_by": requested_by})
    except Exception:
        logger.exception("could not queue a supervision run")


def hits_aad(*, message: Message, epoch: int, revision: int) -> bytes:
    """The associated data binding a queue item's encrypted hits to its message text."""
    return associated_data(
        purpose=AdPurpose.SUPERVISION_HITS,
        room_id=message.room_id,
        message_id=message.uid,
        epoch=epoch,
        sender_id=message.sender_id,
        revision=revision,
    )


def hits_open(*, key: SymmetricKey, message: Message, item: SupervisionItem) -> list[list[int]]:
    """An item's hits, ``[[term id, start, end], ...]``; raises ``CryptoError`` when they
    are not this message's (another row's ciphertext, a tampered byte)."""
    if not item.hits:
        return []
    raw = decrypt(
        key,
        bytes(item.hits),
        aad=hits_aad(message=message, epoch=item.epoch, revision=item.revision),
    )
    hits: list[list[int]] = json.loads(raw)["hits"]
    return hits


# The two notes a decision may seal: the escalation's note and the closing reason. Each
# is stored in ``SupervisionItem.<field>_sealed``.
NOTE_FIELDS = ("escalation_note", "close_reason")


def note_aad(*, item: SupervisionItem, field: str) -> bytes:
    """The associated data binding a reviewer's sealed note to its place: purpose
    ``supervision-note``, the item, its room, message (id), epoch and revision, and the
    field (``escalation_note`` or ``close_reason``). A note copied to another item, to
    another revision's item or to the other field does not open."""
    if field not in NOTE_FIELDS:
        raise ValueError(f"not a note field: {field!r}")
    return associated_data(
        purpose=AdPurpose.SUPERVISION_NOTE,
        item_id=item.pk,
        room_id=item.room_id,
        message_id=item.message_id,
        epoch=item.epoch,
        revision=item.revision,
        field=field,
    )


def note_open(*, key: SymmetricKey, item: SupervisionItem, field: str) -> str | None:
    """The reviewer's note in ``field`` opened with the message's epoch ``key``; None when
    none was given. Raises ``CryptoError`` when the ciphertext is not this item's and
    field's (moved from another row or field, a tampered byte)."""
    sealed = bytes(getattr(item, f"{field}_sealed") or b"")
    if not sealed:
        return None
    return decrypt(key, sealed, aad=note_aad(item=item, field=field)).decode("utf-8")


def _note_seal(*, actor: User, item: SupervisionItem, field: str, note: str) -> tuple[bytes, bool]:
    """``note`` sealed for ``item``'s ``field`` under the message's epoch key, and whether
    it can be read back.

    The key is opened through the compliance key (``compliance_epoch_key``: one
    ``key.compliance.used`` event, kept even if the decision then rolls back). An epoch
    that retention shredded has no key left: the note is then sealed under a fresh random
    key dropped at once, exactly as unreadable as a note sealed before the shred (the
    decision is kept; its text is not). Refused (audited) when the epoch is not shredded
    but its key cannot be opened (no compliance copy, a failed integrity check)."""
    aad = note_aad(item=item, field=field)
    plaintext = note.encode("utf-8")
    epoch = RoomEpoch.objects.filter(room_id=item.room_id, number=item.epoch).first()
    if epoch is not None and epoch.shredded_at is not None:
        return encrypt(SymmetricKey.generate(KeyPurpose.ROOM_EPOCH), plaintext, aad=aad), False
    try:
        if epoch is None:
            raise KeyUnavailableError("no such epoch")
        key = compliance_epoch_key(
            actor=actor,
            epoch=epoch,
            reason=f"sealing the {field.replace('_', ' ')} of supervision item {item.pk}",
        )
    except (KeyUnavailableError, IntegrityFailure) as exc:
        raise refused(
            actor=actor,
            action=REFUSAL,
            target=item,
            reason="note cannot be sealed",
            message="the note cannot be sealed: the message's key cannot be opened through "
            "the compliance key",
            error=type(exc).__name__,
        ) from None
    return encrypt(key, plaintext, aad=aad), True


@dataclass
class _Found:
    message: Message
    reason: str
    lexicon_ids: set[int]
    hit_count: int
    hits: bytes


def _sampled(rate: int) -> bool:
    # Unpredictable to the people supervised: from the OS's CSPRNG, not ``random``.
    return rate > 0 and secrets.randbelow(RATE_SCALE) < rate


def _active_terms() -> QuerySet[SupervisionTerm]:
    return SupervisionTerm.objects.filter(active=True, lexicon__active=True)


def _matcher() -> Matcher:
    terms = _active_terms().order_by("pk")
    return Matcher(
        [Term(t.pk, t.lexicon_id, t.kind, t.value, t.checksum) for t in terms.iterator()]
    )


# --- what a post is matched with: cached per process, under the supervision version ---
#
# Every change of a lexicon, a term or a sampling rate writes a new random value into the
# one ``SupervisionVersion`` row, in its own transaction (``_version_bump``). Each process
# keeps the compiled matcher of the active terms and every sampling rate (terms,
# patterns and rates only: never any text) under the version it read them at, and reads
# the version again at most once every ``VERSION_CHECK_SECONDS``: a post in between
# issues no supervision query at all. So a change takes effect in every other process
# within ``VERSION_CHECK_SECONDS`` of its commit (plus the reload), and at once in the
# process that made it (its cache is dropped as the change is written and again when it
# commits).

VERSION_CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class _Posted:
    version: uuid.UUID | None
    checked_at: float  # time.monotonic() when the version was last read
    matcher: Matcher
    default_rate: int
    room_rates: dict[int, int]
    custodian_rates: dict[int, int]

    def rate_of(self, message: Message) -> int:
        """The sender's rate, else the room's, else the organisation's default, else 0."""
        found = self.custodian_rates.get(message.sender_id)
        if found is None:
            found = self.room_rates.get(message.room_id, self.default_rate)
        return found


_posted: _Posted | None = None
_posted_lock = threading.Lock()


def _version_read() -> uuid.UUID | None:
    return SupervisionVersion.objects.filter(pk=1).values_list("version", flat=True).first()


def _version_bump() -> None:
    """Inside the caller's transaction: give the supervision version a new value (one
    ``UPDATE`` of its row, which it locks until the commit: after the change's own row,
    before the audit chain), and drop this process's cache now and after the commit."""
    now = timezone.now()
    if not SupervisionVersion.objects.filter(pk=1).update(version=uuid.uuid4(), changed_at=now):
        SupervisionVersion.objects.get_or_create(
            pk=1, defaults={"version": uuid.uuid4(), "changed_at": now}
        )
    _posted_forget()
    transaction.on_commit(_posted_forget)


def _posted_forget() -> None:
    global _posted
    _posted = None


def _posted_load(version: uuid.UUID | None, now: float) -> _Posted:
    """The active terms compiled and every sampling rate, read after ``version`` (so a
    change committed in between makes the next check reload again, never the reverse)."""
    default = 0
    rooms: dict[int, int] = {}
    custodians: dict[int, int] = {}
    for room_id, custodian_id, rate in SupervisionSampling.objects.values_list(
        "room_id", "custodian_id", "rate"
    ):
        if custodian_id is not None:
            custodians[custodian_id] = rate
        elif room_id is not None:
            rooms[room_id] = rate
        else:
            default = rate
    return _Posted(version, now, _matcher(), default, rooms, custodians)


def _posted_state() -> _Posted:
    """This process's matcher and rates, current within ``VERSION_CHECK_SECONDS``: no
    query while the version was read less than that ago; one (the version) after; the
    terms and rates reloaded when it changed."""
    global _posted
    now = time.monotonic()
    cached = _posted
    if cached is not None and now - cached.checked_at < VERSION_CHECK_SECONDS:
        return cached
    with _posted_lock:
        cached = _posted
        if cached is not None and now - cached.checked_at < VERSION_CHECK_SECONDS:
            return cached
        version = _version_read()
        if cached is not None and cached.version == version:
            cached = replace(cached, checked_at=now)
        else:
            cached = _posted_load(version, now)
        _posted = cached
        return cached


def _found(
    *,
    message: Message,
    text: str,
    key: Callable[[], SymmetricKey],
    matcher: Matcher,
    rate: Callable[[], int],
) -> _Found | None:
    """One rule for a post and for the run: ``text`` (``message``'s current revision)
    matched in memory; flagged with its hits encrypted under ``key()`` (the message's
    epoch key), else sampled at ``rate()``, else None. The text is not kept."""
    hits, total = matcher.match(text)
    if hits:
        payload = json.dumps(
            {"hits": [[h.term_id, h.start, h.end] for h in hits], "total": total},
            separators=(",", ":"),
        ).encode()
        return _Found(
            message=message,
            reason=SupervisionItem.Reason.FLAGGED,
            lexicon_ids={h.lexicon_id for h in hits},
            hit_count=total,
            hits=encrypt(
                key(),
                payload,
                aad=hits_aad(message=message, epoch=message.epoch, revision=message.revision),
            ),
        )
    if _sampled(rate()):
        return _Found(message, SupervisionItem.Reason.SAMPLED, set(), 0, b"")
    return None


def _items_create(
    found: list[_Found], *, run: SupervisionRun | None, now: datetime
) -> list[SupervisionItem]:
    items = SupervisionItem.objects.bulk_create(
        [
            SupervisionItem(
                message_id=f.message.pk,
                revision=f.message.revision,
                room_id=f.message.room_id,
                sender_id=f.message.sender_id,
                seq=f.message.seq,
                epoch=f.message.epoch,
                sent_at=f.message.created_at,
                reason=f.reason,
                hit_count=f.hit_count,
                hits=f.hits,
                run=run,
                created_at=now,
            )
            for f in found
        ]
    )
    through = SupervisionItem.lexicons.through
    through.objects.bulk_create(
        [
            through(supervisionitem_id=item.pk, supervisionlexicon_id=lexicon_id)
            for item, f in zip(items, found, strict=True)
            for lexicon_id in sorted(f.lexicon_ids)
        ]
    )
    return items


def supervision_match_posted(*, message: Message, text: str) -> SupervisionItem | None:
    """Match a message's new text as it is posted or edited, inside that write's
    transaction, before its audit append; returns the queue item made, or None.

    ``text`` (the plaintext of ``message``'s current revision, held in memory by the
    post) is matched against the active terms (the process's compiled matcher, kept under
    the supervision version: a change is seen at once in the process that made it and
    within ``VERSION_CHECK_SECONDS``, 5 s, in every other; no query while the version is
    fresh); a match makes a ``flagged`` item whose hits are
    encrypted under the message's epoch key (``hits_aad``), as the run's are; an
    unflagged text is sampled at its rate (``sampled``, drawn once, here). The text is
    neither stored nor kept. Messages posted before a lexicon changed are matched
    against it by the next ``supervision_run``. Locks nothing: the item is a new row
    whose inserts take ``KEY SHARE`` on the room (held already), the sender and the
    lexicons. Matching is pure computation: an error is a bug and fails the write.
    """
    state = _posted_state()
    found = _found(
        message=message,
        text=text,
        key=lambda: room_epoch_key_for(
            room_id=message.room_id, number=message.epoch, user_id=message.sender_id
        ),
        matcher=state.matcher,
        rate=lambda: state.rate_of(message),
    )
    if found is None:
        return None
    return _items_create([found], run=None, now=timezone.now())[0]


def _still_allowed(actor: Actor) -> bool:
    if not isinstance(actor, User):
        return True  # the beat schedule's run: the operator's authority
    fresh = User.objects.filter(pk=actor.pk).first()
    return fresh is not None and fresh.is_active and fresh.has_perm(SUPERVISE)


EPOCHS_PER_READ = 100


def _parts_by_epochs(messages: list[Message]) -> list[list[Message]]:
    """``messages`` cut, in order, into parts of at most ``EPOCHS_PER_READ`` epochs."""
    parts: list[list[Message]] = []
    seen: set[tuple[int, int]] = set()
    for message in messages:
        pair = (message.room_id, message.epoch)
        if not parts or (pair not in seen and len(seen) >= EPOCHS_PER_READ):
            parts.append([])
            seen = set()
        seen.add(pair)
        parts[-1].append(message)
    return parts


def _match_batch(
    *,
    actor: Actor,
    run: SupervisionRun,
    messages: list[Message],
    matcher: Matcher,
) -> tuple[list[_Found], int]:
    """Decrypt and match ``messages`` in memory; the plaintext never leaves this function.

    The keys are opened in reads of at most ``EPOCHS_PER_READ`` epochs, each one
    ``supervision.read`` event naming its messages' span, so that an event's list of
    epochs stays within the audit log's size for ``extra`` whatever the batch spans."""
    keys: dict[tuple[int, int], SymmetricKey | IntegrityFailure | None] = {}
    for part in _parts_by_epochs(messages):
        keys.update(
            compliance_epoch_keys(
                actor=actor,
                epochs=sorted({(m.room_id, m.epoch) for m in part}),
                action=AuditAction.SUPERVISION_READ,
                target=run,
                extra={
                    "run": run.pk,
                    "messages": len(part),
                    "first_id": part[0].pk,
                    "last_id": part[-1].pk,
                },
            )
        )
    found: list[_Found] = []
    unreadable = 0
    for message in messages:
        key = keys.get((message.room_id, message.epoch))
        if key is None or isinstance(key, IntegrityFailure):
            unreadable += 1
            continue
        try:
            text = message_decrypt_with_key(
                key=key,
                room_id=message.room_id,
                message_uid=message.uid,
                epoch=message.epoch,
                sender_id=message.sender_id,
                ciphertext=bytes(message.ciphertext),
                revision=message.revision,
            )
        except IntegrityFailure:
            unreadable += 1
            continue
        opened: SymmetricKey = key
        # Sampling is drawn once, when a message is posted or edited: never again here.
        result = _found(
            message=message, text=text, key=lambda: opened, matcher=matcher, rate=lambda: 0
        )
        del text
        if result is not None:
            found.append(result)
    return found, unreadable


def _store_batch(
    *,
    actor: Actor,
    run: SupervisionRun,
    phase: str,
    count: int,
    span: tuple[int, int],
    found: list[_Found],
    unreadable: int,
    cursor: int,
) -> None:
    """One transaction: the run's row (fence, lease), the new items, the audit event."""
    with action_transaction():
        locked = SupervisionRun.objects.select_for_update().get(pk=run.pk)
        if locked.state != SupervisionRun.State.RUNNING:
            raise RuntimeError(f"supervision run {run.pk} was taken over")
        wanted = {(f.message.pk, f.message.revision) for f in found}
        existing = set(
            SupervisionItem.objects.filter(message_id__in=[m for m, _ in wanted]).values_list(
                "message_id", "revision"
            )
        )
        now = timezone.now()
        fresh = [f for f in found if (f.message.pk, f.message.revision) not in existing]
        _items_create(fresh, run=locked, now=now)
        flagged = sum(1 for f in fresh if f.reason == SupervisionItem.Reason.FLAGGED)
        sampled = len(fresh) - flagged
        locked.scanned += count
        locked.flagged += flagged
        locked.sampled += sampled
        locked.unreadable += unreadable
        locked.lease_expires_at = now + LEASE
        if phase == "messages":
            locked.last_id = cursor
        else:
            locked.revisions_last_id = cursor
        locked.save()
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_MATCHED,
            target=locked,
            extra={
                "run": locked.pk,
                "phase": phase,
                "messages": count,
                "first_id": span[0],
                "last_id": span[1],
                "flagged": flagged,
                "sampled": sampled,
                "unreadable": unreadable,
            },
        )
        run.__dict__.update(
            {k: getattr(locked, k) for k in ("scanned", "flagged", "sampled", "unreadable")}
        )


def _start(actor: Actor) -> SupervisionRun:
    try:
        return _start_locked(actor)
    except IntegrityError:
        # Another run was created at the same instant (the partial unique constraint on
        # the running state decided): it works, this one stands down.
        raise SupervisionBusyError(
            "another supervision run is working",
            actor=actor,
            action=REFUSAL,
            reason="busy",
            extra={"running": "started at the same instant"},
        ) from None


def _start_locked(actor: Actor) -> SupervisionRun:
    now = timezone.now()
    with action_transaction():
        running = SupervisionRun.objects.select_for_update().filter(
            state=SupervisionRun.State.RUNNING
        )
        for dead in running:
            if dead.lease_expires_at is not None and dead.lease_expires_at > now:
                raise SupervisionBusyError(
                    "another supervision run is working",
                    actor=actor,
                    action=REFUSAL,
                    reason="busy",
                    extra={"running": dead.pk},
                )
            dead.state = SupervisionRun.State.INTERRUPTED
            dead.finished_at = now
            dead.save(update_fields=["state", "finished_at"])
            audit_record(
                actor=actor,
                action=AuditAction.SUPERVISION_RUN_FAILED,
                target=dead,
                extra={"run": dead.pk, "error": "interrupted"},
            )
        cursors = SupervisionRun.objects.aggregate(
            messages=Max("last_id"), revisions=Max("revisions_last_id")
        )
        after = cursors["messages"] or 0
        revisions_after = cursors["revisions"] or 0
        upto = Message.objects.aggregate(top=Max("pk"))["top"] or 0
        revisions_upto = MessageRevision.objects.aggregate(top=Max("pk"))["top"] or 0
        run = SupervisionRun.objects.create(
            requested_by=actor if isinstance(actor, User) else None,
            started_at=now,
            lease_expires_at=now + LEASE,
            after_id=after,
            upto_id=max(upto, after),
            last_id=after,
            revisions_after_id=revisions_after,
            revisions_upto_id=max(revisions_upto, revisions_after),
            revisions_last_id=revisions_after,
        )
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_RUN_STARTED,
            target=run,
            extra={
                "run": run.pk,
                "after_id": after,
                "upto_id": run.upto_id,
                "revisions_after_id": revisions_after,
                "revisions_upto_id": run.revisions_upto_id,
            },
        )
    return run


def _windows(run: SupervisionRun, pacer: Pacer) -> Iterable[tuple[str, list[Message], int]]:
    """The run's batches: new messages by id, then the messages edited since the last
    run (by their earlier texts' ids), each read outside any transaction."""
    fields = ("pk", "uid", "room_id", "sender_id", "seq", "epoch", "revision", "ciphertext")
    cursor = run.last_id
    while cursor < run.upto_id:
        rows = list(
            Message.objects.filter(pk__gt=cursor, pk__lte=run.upto_id)
            .only(*fields, "created_at")
            .order_by("pk")[: pacer.size]
        )
        if not rows:
            break
        cursor = rows[-1].pk
        yield "messages", rows, cursor
    cursor = run.revisions_last_id
    while cursor < run.revisions_upto_id:
        revisions = list(
            MessageRevision.objects.filter(pk__gt=cursor, pk__lte=run.revisions_upto_id)
            .order_by("pk")
            .values_list("pk", "message_id")[: pacer.size]
        )
        if not revisions:
            break
        cursor = revisions[-1][0]
        # A message newer than the run's start was matched by its id above.
        ids = sorted({m for _, m in revisions if m <= run.upto_id})
        rows = list(Message.objects.filter(pk__in=ids).only(*fields, "created_at").order_by("pk"))
        yield "edits", rows, cursor


@action
def supervision_run(*, actor: Actor = SYSTEM_SUPERVISION) -> SupervisionRun:
    """Match every message written (or edited) since the previous run against the active
    lexicons, and sample the unflagged ones at their rate; returns the run.

    Reads in batches paced as retention's are (``SAFECHAT_SUPERVISION_BATCH`` at most,
    sized to last ``SAFECHAT_RETENTION_BATCH_SECONDS``, a rest of
    ``SAFECHAT_RETENTION_PAUSE_RATIO`` times a batch after it), each opened through the
    compliance key as one ``supervision.read`` event and stored in one transaction with
    one ``supervision.matched`` event; a run killed between batches is resumed by the
    next (its cursor is committed with each batch). One run at a time: another one
    working is refused (``SupervisionBusyError``, audited); one whose lease passed is
    marked ``interrupted``. A run a person asked for stops before a batch once they no
    longer hold ``compliance.supervise`` (``failed``, "right withdrawn"). A message whose
    key was shredded, or fails its integrity check, is counted ``unreadable``. An error
    marks the run ``failed`` (``supervision.run.failed``, the error's type) and re-raises.
    Locks: the run's row; the audit chain last.
    """
    if isinstance(actor, User):
        _require_supervisor(actor)
    run = _start(actor)
    matcher = _matcher()
    run.terms = len(matcher.terms)
    SupervisionRun.objects.filter(pk=run.pk).update(terms=run.terms)
    pacer = Pacer(
        ceiling=settings.SAFECHAT_SUPERVISION_BATCH,
        target=settings.SAFECHAT_RETENTION_BATCH_SECONDS,
        ratio=settings.SAFECHAT_RETENTION_PAUSE_RATIO,
    )
    try:
        for phase, messages, cursor in _windows(run, pacer):
            if not _still_allowed(actor):
                _end(actor, run, SupervisionRun.State.FAILED, error="right withdrawn")
                return run
            started = time.monotonic()
            found: list[_Found] = []
            unreadable = 0
            if messages:  # empty: every message of these edits was purged meanwhile
                found, unreadable = _match_batch(
                    actor=actor, run=run, messages=messages, matcher=matcher
                )
            _store_batch(
                actor=actor,
                run=run,
                phase=phase,
                count=len(messages),
                span=(messages[0].pk, messages[-1].pk) if messages else (cursor, cursor),
                found=found,
                unreadable=unreadable,
                cursor=cursor,
            )
            pacer.measured(elapsed=time.monotonic() - started, rows=len(messages))
    except Exception as exc:
        logger.exception("supervision run %s failed", run.pk)
        _end(actor, run, SupervisionRun.State.FAILED, error=type(exc).__name__)
        raise
    _end(actor, run, SupervisionRun.State.FINISHED)
    return run


def _end(actor: Actor, run: SupervisionRun, state: str, *, error: str = "") -> None:
    with action_transaction():
        locked = SupervisionRun.objects.select_for_update().get(pk=run.pk)
        locked.state = state
        locked.finished_at = timezone.now()
        locked.error = error[:200]
        locked.lease_expires_at = None
        locked.save()
        totals: dict[str, Any] = {
            "run": locked.pk,
            "scanned": locked.scanned,
            "flagged": locked.flagged,
            "sampled": locked.sampled,
            "unreadable": locked.unreadable,
            "terms": locked.terms,
        }
        audit_record(
            actor=actor,
            action=AuditAction.SUPERVISION_RUN_FINISHED
            if state == SupervisionRun.State.FINISHED
            else AuditAction.SUPERVISION_RUN_FAILED,
            target=locked,
            extra={**totals, **({"error": error[:200]} if error else {})},
        )
    run.state = locked.state
    run.finished_at = locked.finished_at
    run.error = locked.error


# --- decisions -------------------------------------------------------------------


def _decidable(*, actor: User, item: SupervisionItem, decision: str) -> SupervisionItem:
    locked = SupervisionItem.objects.select_for_update().get(pk=item.pk)
    if locked.sender_id == actor.pk:
        raise refused(
            actor=actor,
            action=REFUSAL,
            target=locked,
            reason="own message",
            message="nobody reviews their own messages: another officer decides this one",
            decision=decision,
        )
    allowed = (
        {SupervisionItem.State.PENDING}
        if decision == "escalate"
        else {SupervisionItem.State.PENDING, SupervisionItem.State.ESCALATED}
    )
    if locked.state not in allowed:
        raise refused(
            actor=actor,
            action=REFUSAL,
            target=locked,
            reason="already decided",
            message=f"this item is {locked.state} already",
            decision=decision,
            state=locked.state,
        )
    return locked


@dataclass(frozen=True)
class _Decision:
    """What a decision changes: the state it moves the item to, the fields naming who and
    when, the note's field (sealed into ``<note_field>_sealed``), what the note is called
    in a refusal, and the event."""

    state: str
    by_field: str
    at_field: str
    note_field: str
    note_name: str
    event: AuditAction


_DECISIONS = {
    "escalate": _Decision(
        state=SupervisionItem.State.ESCALATED,
        by_field="escalated_by",
        at_field="escalated_at",
        note_field="escalation_note",
        note_name="note",
        event=AuditAction.SUPERVISION_ITEM_ESCALATED,
    ),
    "close": _Decision(
        state=SupervisionItem.State.CLOSED,
        by_field="closed_by",
        at_field="closed_at",
        note_field="close_reason",
        note_name="reason",
        event=AuditAction.SUPERVISION_ITEM_CLOSED,
    ),
}


def _decide(*, actor: User, item: SupervisionItem, decision: str, note: object) -> SupervisionItem:
    """The one decision step both actions take, in one transaction: the right read
    afresh and the note required (refusals audited, nothing changed), the item's row
    locked and checked (``_decidable``), the note sealed (``_note_seal``), the item saved
    in its new state, and the decision's event (the item, its message and revision, the
    state it was in, and that a note was given with its length: never its text).
    Locks: the item's row; the audit chain last."""
    step = _DECISIONS[decision]
    _require_supervisor(actor)
    text = require_text(note, actor=actor, action=REFUSAL, field=step.note_name, limit=NOTE_MAX)
    with action_transaction():
        locked = _decidable(actor=actor, item=item, decision=decision)
        previous = locked.state
        sealed, readable = _note_seal(actor=actor, item=locked, field=step.note_field, note=text)
        sealed_field = f"{step.note_field}_sealed"
        locked.state = step.state
        setattr(locked, step.by_field, actor)
        setattr(locked, step.at_field, timezone.now())
        setattr(locked, sealed_field, sealed)
        locked.save(update_fields=["state", step.by_field, step.at_field, sealed_field])
        audit_record(
            actor=actor,
            action=step.event,
            target=locked,
            extra={
                "message_id": locked.message_id,
                "revision": locked.revision,
                "was": previous,
                "note_given": True,
                "note_length": len(text),
                "note_readable": readable,
            },
        )
    return locked


@action
def supervision_item_escalate(*, actor: User, item: SupervisionItem, note: str) -> SupervisionItem:
    """Escalate a pending item, with a note saying why (required, at most 2,000
    characters).

    The note is sealed under the message's epoch key (``note_aad``; never stored as
    text), the key opened through the compliance key (``key.compliance.used``); the
    ``supervision.item.escalated`` event records the note's length in characters, never
    its text. On an epoch retention shredded the decision stands and the note is sealed
    unreadable (``note_readable: false``). Refused (audited, nothing changed) without
    ``compliance.supervise``, without a note, for an item of a message the reviewer sent,
    for one not pending (also when two reviewers decide at once: decided under the item's
    row lock), and when the epoch's key cannot be opened. Locks: the item's row; the
    audit chain last."""
    return _decide(actor=actor, item=item, decision="escalate", note=note)


@action
def supervision_item_close(*, actor: User, item: SupervisionItem, reason: str) -> SupervisionItem:
    """Close a pending or escalated item, with a reason (required, at most 2,000
    characters).

    The reason is sealed as an escalation's note is (``note_aad``, field
    ``close_reason``); the ``supervision.item.closed`` event records its length, never its
    text. Refused (audited, nothing changed) without ``compliance.supervise``, without a
    reason, for an item of a message the reviewer sent, for one closed already (under the
    item's row lock), and when the epoch's key cannot be opened. Locks: the item's row;
    the audit chain last."""
    return _decide(actor=actor, item=item, decision="close", note=reason)


__all__ = [
    "SUPERVISE",
    "SYSTEM_SUPERVISION",
    "SupervisionBusyError",
    "hits_aad",
    "hits_open",
    "note_aad",
    "note_open",
    "supervision_item_close",
    "supervision_item_escalate",
    "supervision_lexicon_create",
    "supervision_lexicon_set_active",
    "supervision_match_posted",
    "supervision_run",
    "supervision_run_request",
    "supervision_sampling_set",
    "supervision_term_add",
    "supervision_term_remove",
]
