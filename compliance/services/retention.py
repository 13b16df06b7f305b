"""The retention job: purge what has expired and is not held, then shred emptied epochs.

``retention_apply`` is the one service behind the Celery beat task, the management
command and the admin. Guarantees:

* exactly what is past its room's policy (the room's override, else the organisation's
  default; no policy keeps forever) and not covered by an active legal hold is purged:
  messages with their earlier texts, reactions, mentions and files (blobs included),
  and files no message shares; a message's age is its last write (an edit restarts it);
* each purged message leaves a tombstone (id, room, number, sent time, run), stamped with
  its batch's instant, which the batch's audit event records;
* a room's policy is read again in every batch, under the ledger's lock that a policy
  change takes exclusively: one lengthened (or made "forever") while a run works holds
  from that batch on; one shortened waits for the next run;
* an epoch key is destroyed only once nothing it protects is left and no hold covers it
  (``rooms.services.epochs.epoch_shred_locked``, which decides that under its locks);
* work goes in small batches, each its own transaction with its audit event and the
  run's counts, so no lock is held long and a run killed at any point leaves a
  consistent state that the next run completes (blobs of committed purges included);
* batches are paced: each aims to last ``SAFECHAT_RETENTION_BATCH_SECONDS`` (its size
  adapts between ``min(10, batch)`` and the batch size), and the job rests
  ``SAFECHAT_RETENTION_PAUSE_RATIO`` times as long after each, so the chat's own
  transactions keep their latency during a large purge;
* a run a person asked for acts for them only while they may: their right is read again
  before every batch, and once withdrawn the run stops there (state ``refused``, audited
  ``retention.run.refused``);
* one run works at a time (``compliance.locks``); a dry run counts and changes nothing.

How a batch finds its messages: per room and epoch, oldest first, the next window of
candidates is read (outside any transaction) through the index on (room, epoch, sent
time, id), continuing after the last window's (sent time, id); the batch then locks the
window's rows by id and keeps only those that, under the lock, are still expired (by
their last write) and not held. A window's held or recently edited rows are passed over,
never purged.

Lock order of a batch: the run's row, the legal-hold ledger (shared), then the messages
(or files) it deletes and their revisions, reactions, mentions and files; a shred takes
the room's row and the epoch's key rows; the audit chain last (its deferred foreign-key
checks are run before it, so none runs at commit while the chain's lock is held).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SYSTEM_RETENTION, AuditTarget, SystemActor
from audit.services import audit_record
from compliance import locks
from compliance.models import BlobPurge, MessageTombstone, RetentionRun
from compliance.selectors import (
    HoldScope,
    active_hold_scopes,
    epoch_held,
    held_files,
    held_messages,
    messages_with_last_write,
    policies_by_room,
    policy_for_room,
    shortest_policy_days,
    tombstone_ids_digest,
)
from compliance.services._common import (
    MANAGE_RETENTION,
    RetentionBusyError,
    RetentionRightWithdrawnError,
    refused,
    require_permission,
)
from files import blobs
from files.models import StoredFile
from rooms.models import Mention, Message, MessageRevision, Reaction, Room
from rooms.services.epochs import epoch_shred_locked
from safechat.actions import action, action_transaction
from safechat.keyring.models import RoomEpoch

logger = logging.getLogger(__name__)

Actor = User | SystemActor


class RunSupersededError(Exception):
    """This run's row is no longer ``running``: a later run took it for dead."""


@dataclass
class RoomCounts:
    """What a run purged (or a dry run would purge) in one room."""

    room_id: int
    keep_days: int
    messages: int = 0
    revisions: int = 0
    reactions: int = 0
    mentions: int = 0
    files: int = 0
    epochs: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.messages or self.files or self.epochs)

    def span(self, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (self.oldest is None or first < self.oldest):
            self.oldest = first
        if last is not None and (self.newest is None or last > self.newest):
            self.newest = last


@dataclass
class RetentionReport:
    run_id: int
    dry_run: bool
    rooms: list[RoomCounts] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    backup_warning: str = ""

    def total(self, name: str) -> int:
        return sum(int(getattr(room, name)) for room in self.rooms)

    def totals(self) -> dict[str, int]:
        names = ("messages", "revisions", "reactions", "mentions", "files", "epochs")
        return {name: self.total(name) for name in names}


def _rooms_in_scope(room_id: int | None) -> list[tuple[int, int]]:
    """(room id, days kept) of every room whose content expires, by room id."""
    default, overrides = policies_by_room()
    ids = (
        [room_id]
        if room_id is not None
        else list(Room.objects.order_by("pk").values_list("pk", flat=True))
    )
    scoped = []
    for pk in ids:
        days = overrides.get(pk, default)  # an override of "forever" is None too
        if days is not None:
            scoped.append((pk, days))
    return scoped


def _expired_messages(room_id: int, cutoff: datetime, held: Q | None) -> QuerySet[Message]:
    rows = messages_with_last_write(Message.objects.filter(room_id=room_id)).filter(
        Q(last_written__lt=cutoff)
    )
    return rows.exclude(held) if held is not None else rows


def _expired_loose_files(room_id: int, cutoff: datetime, held: Q | None) -> QuerySet[StoredFile]:
    """Files no message shares (refused, withdrawn, cancelled, expired uploads) past the
    cutoff; a file being uploaded is the upload expiry's, not ours."""
    rows = StoredFile.objects.filter(
        room_id=room_id, message__isnull=True, created_at__lt=cutoff
    ).exclude(state=StoredFile.State.UPLOADING)
    return rows.exclude(held) if held is not None else rows


def _loose_files_expire(room_id: int, cutoff: datetime) -> bool:
    """A quick look, outside any transaction, whether a batch of loose files is needed."""
    return _expired_loose_files(room_id, cutoff, None).exists()


def _epoch_has_content(room_id: int, number: int) -> bool:
    """Whether anything is left under the room's epoch: each an index probe."""
    return (
        Message.objects.filter(room_id=room_id, epoch=number).exists()
        or MessageRevision.objects.filter(room_id=room_id, epoch=number).exists()
        or StoredFile.objects.filter(room_id=room_id, epoch=number).exists()
    )


def _cutoff(now: datetime, days: int) -> datetime:
    """The instant before which content kept ``days`` days has expired at ``now``; the
    earliest instant a date can name if ``days`` reach further back (nothing expired)."""
    try:
        return now - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _cutoff_in_force(room_id: int, cutoff: datetime) -> datetime | None:
    """The run's ``cutoff`` for the room, or an earlier one if its policy was lengthened
    since the run began (None: it keeps the room forever now). Read inside a batch, after
    the ledger's lock (a policy change takes it exclusively), it is the policy in force
    until the batch commits; a policy shortened meanwhile waits for the next run."""
    days = policy_for_room(room_id)
    if days is None:
        return None
    return min(cutoff, _cutoff(timezone.now(), days))


# --- dry run ----------------------------------------------------------------


def _dry_room(room_id: int, days: int, now: datetime) -> RoomCounts:
    scopes = active_hold_scopes()
    held_m, held_f = held_messages(scopes), held_files(scopes)
    cutoff = _cutoff(now, days)
    counts = RoomCounts(room_id=room_id, keep_days=days)
    doomed = _expired_messages(room_id, cutoff, held_m)
    summary = doomed.aggregate(n=Count("pk"), first=Min("created_at"), last=Max("created_at"))
    counts.messages = summary["n"]
    counts.span(summary["first"], summary["last"])
    doomed_ids = doomed.values("pk")
    counts.revisions = MessageRevision.objects.filter(message_id__in=doomed_ids).count()
    counts.reactions = Reaction.objects.filter(message_id__in=doomed_ids).count()
    counts.mentions = Mention.objects.filter(message_id__in=doomed_ids).count()
    loose = _expired_loose_files(room_id, cutoff, held_f)
    loose_summary = loose.aggregate(n=Count("pk"), first=Min("created_at"), last=Max("created_at"))
    shared = StoredFile.objects.filter(message_id__in=doomed_ids)
    counts.files = loose_summary["n"] + shared.count()
    counts.span(loose_summary["first"], loose_summary["last"])
    doomed_files = StoredFile.objects.filter(
        Q(pk__in=loose.values("pk")) | Q(pk__in=shared.values("pk"))
    )
    for epoch in RoomEpoch.objects.filter(
        room_id=room_id, shredded_at__isnull=True, message_count__gt=0
    ).order_by("number"):
        n = epoch.number
        left = (
            Message.objects.filter(room_id=room_id, epoch=n).exclude(pk__in=doomed_ids).exists()
            or MessageRevision.objects.filter(room_id=room_id, epoch=n)
            .exclude(message_id__in=doomed_ids)
            .exists()
            or StoredFile.objects.filter(room_id=room_id, epoch=n)
            .exclude(pk__in=doomed_files.values("pk"))
            .exists()
        )
        if not left and not epoch_held(room_id, n):
            counts.epochs += 1
    return counts


def _dry_run(*, actor: Actor, scope: list[tuple[int, int]], room_id: int | None) -> RetentionReport:
    now = timezone.now()
    rooms = [_dry_room(pk, days, now) for pk, days in scope]
    report = RetentionReport(run_id=0, dry_run=True, rooms=[r for r in rooms if not r.empty])
    totals = report.totals()
    with action_transaction():
        run = RetentionRun.objects.create(
            dry_run=True,
            room_scope=room_id,
            state=RetentionRun.State.FINISHED,
            started_at=now,
            finished_at=timezone.now(),
            messages=totals["messages"],
            revisions=totals["revisions"],
            reactions=totals["reactions"],
            mentions=totals["mentions"],
            files=totals["files"],
            epochs_shredded=totals["epochs"],
        )
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_DRY_RUN,
            target=run,
            extra={"room": room_id, "rooms": len(report.rooms), **totals},
        )
    report.run_id = run.pk
    return report


# --- the run ------------------------------------------------------------------


def _lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.SAFECHAT_RETENTION_LEASE_SECONDS)


def _run_claim(*, actor: Actor, room_id: int | None) -> tuple[RetentionRun, list[int]]:
    """Start a run, taking over any run found dead; refused if one is alive."""
    now = timezone.now()
    with action_transaction():
        running = list(
            RetentionRun.objects.select_for_update()
            .filter(state=RetentionRun.State.RUNNING)
            .order_by("pk")
        )
        # With the session lock (PostgreSQL), a row still "running" is a dead run's.
        holds_session_lock = connection.vendor == "postgresql"
        resumed = []
        for other in running:
            alive = other.lease_expires_at is not None and other.lease_expires_at > now
            if alive and not holds_session_lock:
                raise _busy(actor=actor, room_id=room_id, running=other.pk)
            other.state = RetentionRun.State.INTERRUPTED
            other.finished_at = now
            other.save(update_fields=["state", "finished_at"])
            resumed.append(other.pk)
        try:
            with transaction.atomic():
                run = RetentionRun.objects.create(
                    room_scope=room_id, started_at=now, lease_expires_at=_lease_end()
                )
        except IntegrityError:  # another run started at the same instant: it works
            raise _busy(actor=actor, room_id=room_id) from None
        for pk in resumed:
            audit_record(
                actor=actor,
                action=AuditAction.RETENTION_RUN_INTERRUPTED,
                target=AuditTarget("compliance.retentionrun", str(pk)),
                extra={"taken_over_by": run.pk},
            )
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_RUN_STARTED,
            target=run,
            extra={"room": room_id, "resumes": resumed},
        )
    return run, resumed


def _run_fence(run: RetentionRun) -> None:
    """Inside a batch, first: lock this run's row, check it is still this run's turn and
    renew its lease, in one statement (a run taken over meanwhile updates nothing)."""
    renewed = RetentionRun.objects.filter(pk=run.pk, state=RetentionRun.State.RUNNING).update(
        lease_expires_at=_lease_end()
    )
    if not renewed:
        raise RunSupersededError(f"retention run {run.pk} was taken over")


def _requester_check(*, actor: Actor, run: RetentionRun) -> None:
    """Inside a batch: a run a person asked for goes on only while they are active and
    hold ``compliance.manage_retention``, read afresh (roles change while a run works).
    Raises ``RetentionRightWithdrawnError`` (the batch rolls back; the refusal is audited
    with what the run committed so far)."""
    if not isinstance(actor, User):
        return  # the system's own run: the operator's authority
    fresh = User.objects.filter(pk=actor.pk).first()
    if fresh is not None and fresh.is_active and fresh.has_perm(MANAGE_RETENTION):
        return
    done = RetentionRun.objects.values(
        "messages", "revisions", "reactions", "mentions", "files", "epochs_shredded"
    ).get(pk=run.pk)
    raise RetentionRightWithdrawnError(
        "the compliance officer who asked for this run may no longer run retention: "
        "it stopped before its next batch",
        actor=actor,
        action=AuditAction.RETENTION_RUN_REFUSED,
        target=run,
        reason="right withdrawn",
        extra={"run": run.pk, "room": run.room_scope, **done},
    )


def _batch_begin(*, actor: Actor, run: RetentionRun) -> None:
    """The top of every batch and shred transaction, in the lock order: the run's row
    (fence), the requester's right, then the legal-hold ledger (shared)."""
    _run_fence(run)
    _requester_check(actor=actor, run=run)
    locks.ledger_lock_shared()


def _deferred_checks_now() -> None:
    """Run the transaction's deferred foreign-key checks now (PostgreSQL), before the
    audit append: left to COMMIT, they would run while the audit chain's lock is held,
    and every other writer waits on that lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _batch_committed(run: RetentionRun) -> None:
    """Called after each batch commits; tests inject a failure here."""


def _rest(seconds: float) -> None:
    """The pause between batches (tests replace it)."""
    if seconds > 0:
        time.sleep(seconds)


@dataclass
class Pacer:
    """Sizes purge batches so each lasts about ``target`` seconds, between ``floor`` and
    ``ceiling`` rows, and rests ``ratio`` times a batch's duration after it.

    The size moves by at most a factor of two per batch (a slow batch on a busy machine
    does not collapse it, nor a fast one blow it up), and only a full batch may grow it:
    a short one measured too few rows to say more than "smaller".
    """

    ceiling: int
    target: float
    ratio: float
    floor: int = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.floor = min(10, self.ceiling)
        self.size = max(self.floor, min(self.ceiling, 100))

    def measured(self, *, elapsed: float, rows: int) -> None:
        """A batch of ``rows`` rows took ``elapsed`` seconds: size the next one, rest."""
        if rows:
            ideal = rows * self.target / max(elapsed, 1e-4)
            bounded = min(max(ideal, self.size / 2), self.size * 2)
            proposed = int(min(max(bounded, self.floor), self.ceiling))
            self.size = proposed if rows >= self.size else min(self.size, proposed)
        _rest(elapsed * self.ratio)


class BatchInstants:
    """The instant each batch stamps on its tombstones and records in its audit event:
    strictly increasing within a run, so a batch's tombstones are told apart by it."""

    def __init__(self) -> None:
        self.last: datetime | None = None

    def next(self) -> datetime:
        now = timezone.now()
        if self.last is not None and now <= self.last:
            now = self.last + timedelta(microseconds=1)
        self.last = now
        return now


def _blobs_remove(run: RetentionRun) -> int:
    """Remove the blobs of committed purges (this run's and any dead run's), then forget
    them. Blob removal is idempotent, so a crash between the two repeats it harmlessly."""
    removed = 0
    while True:
        pending = list(BlobPurge.objects.order_by("pk")[:100])
        if not pending:
            return removed
        for item in pending:
            blobs.blobs_delete_prefix(item.prefix)
        with action_transaction():
            _run_fence(run)
            BlobPurge.objects.filter(pk__in=[item.pk for item in pending]).delete()
        removed += len(pending)


def _delete_rows(rows: QuerySet[Any]) -> None:
    """One DELETE statement, without Django's collector (which would read every row and
    look for dependants first): the caller removed or unlinked every dependant already,
    and a foreign key it missed fails the statement (the batch rolls back)."""
    rows._raw_delete(rows.db)


Cursor = tuple[datetime, int]


def _window(
    *, room_id: int, epoch: int, cutoff: datetime, after: Cursor | None, size: int
) -> list[Cursor]:
    """The next ``size`` candidates of the room's epoch sent before ``cutoff``, as (sent
    time, id), oldest first, after ``after``: one range scan of the index on (room,
    epoch, sent time, id). Only candidates: the batch decides under its locks."""
    rows = Message.objects.filter(room_id=room_id, epoch=epoch, created_at__lt=cutoff)
    if after is not None:
        sent, pk = after
        rows = rows.filter(created_at__gte=sent).filter(
            Q(created_at__gt=sent) | Q(created_at=sent, pk__gt=pk)
        )
    return list(rows.order_by("created_at", "pk").values_list("created_at", "pk")[:size])


def _purge_messages_batch(
    *,
    actor: Actor,
    run: RetentionRun,
    counts: RoomCounts,
    cutoff: datetime,
    candidates: list[int],
    instants: BatchInstants,
) -> tuple[int, int]:
    """Purge those of ``candidates`` (ids of the room's messages) that, under their
    locks, are still expired and not held, in one transaction; returns (messages, files)
    purged."""
    with action_transaction():
        _batch_begin(actor=actor, run=run)
        in_force = _cutoff_in_force(counts.room_id, cutoff)
        if in_force is None:
            return 0, 0
        held = held_messages(active_hold_scopes())
        rows = list(
            _expired_messages(counts.room_id, in_force, held)
            .filter(pk__in=candidates)
            .select_for_update(of=("self",))
            .order_by("pk")
            .only("pk", "seq", "created_at", "room")
        )
        if not rows:
            return 0, 0
        ids = [row.pk for row in rows]
        # A reply that stays loses its link to the purged message (its tombstone remains).
        Message.objects.filter(parent_id__in=ids).update(parent=None)
        revisions, _ = MessageRevision.objects.filter(message_id__in=ids).delete()
        reactions, _ = Reaction.objects.filter(message_id__in=ids).delete()
        mentions, _ = Mention.objects.filter(message_id__in=ids).delete()
        shared = list(
            StoredFile.objects.select_for_update()
            .filter(message_id__in=ids)
            .order_by("pk")
            .values_list("pk", "blob_prefix")
        )
        BlobPurge.objects.bulk_create([BlobPurge(prefix=prefix, run=run) for _, prefix in shared])
        _delete_rows(StoredFile.objects.filter(pk__in=[pk for pk, _ in shared]))
        _delete_rows(Message.objects.filter(pk__in=ids))
        stamp = instants.next()
        MessageTombstone.objects.bulk_create(
            [
                MessageTombstone(
                    message_id=row.pk,
                    room_id=row.room_id,
                    seq=row.seq,
                    sent_at=row.created_at,
                    purged_at=stamp,
                    run=run,
                )
                for row in rows
            ]
        )
        RetentionRun.objects.filter(pk=run.pk).update(
            messages=F("messages") + len(ids),
            revisions=F("revisions") + revisions,
            reactions=F("reactions") + reactions,
            mentions=F("mentions") + mentions,
            files=F("files") + len(shared),
        )
        _deferred_checks_now()
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_PURGED,
            target=AuditTarget("rooms.room", str(counts.room_id)),
            extra={
                "run": run.pk,
                "messages": len(ids),
                "first_id": ids[0],
                "last_id": ids[-1],
                "purged_at": stamp.isoformat(),
                "ids_digest": tombstone_ids_digest(ids),
                "revisions": revisions,
                "reactions": reactions,
                "mentions": mentions,
                "files": len(shared),
            },
        )
    counts.messages += len(ids)
    counts.revisions += revisions
    counts.reactions += reactions
    counts.mentions += mentions
    counts.files += len(shared)
    sent = [row.created_at for row in rows]
    counts.span(min(sent), max(sent))
    return len(ids), len(shared)


def _purge_loose_files_batch(
    *, actor: Actor, run: RetentionRun, counts: RoomCounts, cutoff: datetime, limit: int
) -> int:
    with action_transaction():
        _batch_begin(actor=actor, run=run)
        in_force = _cutoff_in_force(counts.room_id, cutoff)
        if in_force is None:
            return 0
        held = held_files(active_hold_scopes())
        rows = list(
            _expired_loose_files(counts.room_id, in_force, held)
            .select_for_update()
            .order_by("pk")
            .only("pk", "blob_prefix", "created_at")[:limit]
        )
        if not rows:
            return 0
        BlobPurge.objects.bulk_create([BlobPurge(prefix=row.blob_prefix, run=run) for row in rows])
        _delete_rows(StoredFile.objects.filter(pk__in=[row.pk for row in rows]))
        RetentionRun.objects.filter(pk=run.pk).update(files=F("files") + len(rows))
        _deferred_checks_now()
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_PURGED,
            target=AuditTarget("rooms.room", str(counts.room_id)),
            extra={"run": run.pk, "messages": 0, "files": len(rows)},
        )
    counts.files += len(rows)
    counts.span(rows[0].created_at, max(row.created_at for row in rows))
    return len(rows)


def _wholly_held(room_id: int, scopes: list[HoldScope]) -> bool:
    """Whether a hold covers all of the room (named, or a custodian's direct
    conversation, with no range): then there is nothing to look through. Only a
    shortcut: every batch decides under the ledger's lock."""
    return any(
        (room_id in scope.rooms or room_id in scope.direct_rooms)
        and scope.start is None
        and scope.end is None
        for scope in scopes
    )


def _purge_room_messages(
    *,
    actor: Actor,
    run: RetentionRun,
    counts: RoomCounts,
    cutoff: datetime,
    pacer: Pacer,
    instants: BatchInstants,
) -> None:
    """Every epoch of the room that has messages, oldest candidates first, window by
    window."""
    if _wholly_held(counts.room_id, active_hold_scopes()):
        return
    number = _next_epoch_with_messages(counts.room_id, after=-1)
    while number is not None:
        after: Cursor | None = None
        while True:
            in_force = _cutoff_in_force(counts.room_id, cutoff)
            if in_force is None:
                return  # kept forever now
            cutoff = in_force
            size = pacer.size
            window = _window(
                room_id=counts.room_id, epoch=number, cutoff=cutoff, after=after, size=size
            )
            if not window:
                break
            started = time.monotonic()
            purged, files = _purge_messages_batch(
                actor=actor,
                run=run,
                counts=counts,
                cutoff=cutoff,
                candidates=[pk for _, pk in window],
                instants=instants,
            )
            elapsed = time.monotonic() - started
            if files:
                _blobs_remove(run)
            if purged:
                _batch_committed(run)
            pacer.measured(elapsed=elapsed, rows=len(window))
            if len(window) < size:
                break
            after = window[-1]
        number = _next_epoch_with_messages(counts.room_id, after=number)


def _next_epoch_with_messages(room_id: int, *, after: int) -> int | None:
    """The room's lowest epoch above ``after`` that any message is under: one probe of
    the index on (room, epoch, …), so every epoch costs one, however many messages."""
    return (
        Message.objects.filter(room_id=room_id, epoch__gt=after)
        .order_by("epoch")
        .values_list("epoch", flat=True)
        .first()
    )


def _purge_room_loose_files(
    *, actor: Actor, run: RetentionRun, counts: RoomCounts, cutoff: datetime, pacer: Pacer
) -> None:
    while True:
        in_force = _cutoff_in_force(counts.room_id, cutoff)
        if in_force is None or not _loose_files_expire(counts.room_id, in_force):
            return
        cutoff = in_force
        size = pacer.size
        started = time.monotonic()
        done = _purge_loose_files_batch(
            actor=actor, run=run, counts=counts, cutoff=cutoff, limit=size
        )
        elapsed = time.monotonic() - started
        if done:
            _blobs_remove(run)
            _batch_committed(run)
        pacer.measured(elapsed=elapsed, rows=done)
        if done < size:  # held ones are left, or another run's work
            return


def _shred_emptied_epochs(
    *, actor: Actor, run: RetentionRun, counts: RoomCounts, pacer: Pacer
) -> None:
    """Destroy the key of every epoch of the room with nothing left under it, unheld."""
    candidates = RoomEpoch.objects.filter(
        room_id=counts.room_id, shredded_at__isnull=True, message_count__gt=0
    ).order_by("number")
    for epoch in list(candidates):
        if _epoch_has_content(counts.room_id, epoch.number):
            continue
        started = time.monotonic()
        with action_transaction():
            _batch_begin(actor=actor, run=run)
            Room.objects.select_for_update(no_key=True).filter(pk=counts.room_id).first()
            # Again under the room's lock: a post that just used the epoch is seen.
            if _epoch_has_content(counts.room_id, epoch.number):
                continue
            if epoch_held(counts.room_id, epoch.number):
                continue
            epoch_shred_locked(actor=actor, epoch=epoch)
            RetentionRun.objects.filter(pk=run.pk).update(epochs_shredded=F("epochs_shredded") + 1)
        counts.epochs += 1
        _batch_committed(run)
        _rest((time.monotonic() - started) * pacer.ratio)


def _backup_check(*, actor: Actor, run: RetentionRun) -> str:
    shortest = shortest_policy_days()
    kept = settings.SAFECHAT_BACKUP_RETENTION_DAYS
    if shortest is None or kept <= shortest:
        return ""
    warning = (
        f"backups are kept {kept} days, longer than the shortest retention policy "
        f"({shortest} days): purged content outlives its policy in them "
        "(docs/deployment.md, Backups and retention)"
    )
    logger.warning("retention: %s", warning)
    with action_transaction():
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_BACKUP_WARNING,
            target=run,
            extra={"backup_days": kept, "shortest_policy_days": shortest},
        )
    return warning


def _run_end(
    *, actor: Actor, run: RetentionRun, state: str, error: str = "", audited: bool = True
) -> None:
    """Record the run's end; ``audited`` False when its refusal is the record already."""
    with action_transaction():
        updated = RetentionRun.objects.filter(pk=run.pk, state=RetentionRun.State.RUNNING).update(
            state=state, finished_at=timezone.now(), lease_expires_at=None, error=error[:200]
        )
        if not updated or not audited:
            return
        final = RetentionRun.objects.get(pk=run.pk)
        totals = {
            "messages": final.messages,
            "revisions": final.revisions,
            "reactions": final.reactions,
            "mentions": final.mentions,
            "files": final.files,
            "epochs": final.epochs_shredded,
        }
        finished = state == RetentionRun.State.FINISHED
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_RUN_FINISHED
            if finished
            else AuditAction.RETENTION_RUN_FAILED,
            target=final,
            extra={
                "room": run.room_scope,
                **totals,
                **({} if finished else {"error": error[:200]}),
            },
        )


def _busy(*, actor: Actor, room_id: int | None, running: int | None = None) -> RetentionBusyError:
    """The refusal of a run while another works (audited ``retention.run.refused``, with
    the working run's id when it is known)."""
    return RetentionBusyError(
        "another retention run is working; try again when it ends",
        actor=actor,
        action=AuditAction.RETENTION_RUN_REFUSED,
        reason="another run is working",
        extra={"room": room_id, **({"running": running} if running is not None else {})},
    )


def _real_run(
    *, actor: Actor, scope: list[tuple[int, int]], room_id: int | None, limit: int
) -> RetentionReport:
    if not locks.run_lock_try():  # always taken on SQLite: the run's lease decides there
        raise _busy(actor=actor, room_id=room_id)
    try:
        run, resumed = _run_claim(actor=actor, room_id=room_id)
        report = RetentionReport(run_id=run.pk, dry_run=False, resumed=resumed)
        pacer = Pacer(
            ceiling=limit,
            target=settings.SAFECHAT_RETENTION_BATCH_SECONDS,
            ratio=settings.SAFECHAT_RETENTION_PAUSE_RATIO,
        )
        instants = BatchInstants()
        try:
            report.backup_warning = _backup_check(actor=actor, run=run)
            _blobs_remove(run)  # what a dead run committed but did not remove
            now = timezone.now()
            for pk, days in scope:
                counts = RoomCounts(room_id=pk, keep_days=days)
                cutoff = _cutoff(now, days)
                _purge_room_messages(
                    actor=actor,
                    run=run,
                    counts=counts,
                    cutoff=cutoff,
                    pacer=pacer,
                    instants=instants,
                )
                _purge_room_loose_files(
                    actor=actor, run=run, counts=counts, cutoff=cutoff, pacer=pacer
                )
                _shred_emptied_epochs(actor=actor, run=run, counts=counts, pacer=pacer)
                if not counts.empty:
                    report.rooms.append(counts)
        except RetentionRightWithdrawnError:
            # Audited as the refusal (with the counts so far) when its batch rolled back.
            _run_end(
                actor=actor,
                run=run,
                state=RetentionRun.State.REFUSED,
                error="the requester's right was withdrawn",
                audited=False,
            )
            raise
        except BaseException as exc:
            try:
                _run_end(
                    actor=actor, run=run, state=RetentionRun.State.FAILED, error=type(exc).__name__
                )
            except Exception:  # the database went away: the next run finds this one dead
                logger.exception("retention: run %s could not record its failure", run.pk)
            raise
        _run_end(actor=actor, run=run, state=RetentionRun.State.FINISHED)
        return report
    finally:
        locks.run_lock_release()


@action
def retention_apply(
    *,
    actor: Actor = SYSTEM_RETENTION,
    dry_run: bool = False,
    room_id: int | None = None,
    batch_size: int | None = None,
) -> RetentionReport:
    """Apply the retention policies (every room, or only ``room_id``): see the module.

    ``dry_run`` reports per room what would go (counts, oldest and newest item) and
    changes nothing (it records the dry run and its audit event). ``batch_size``: the
    most messages (or files) one transaction purges (default
    ``SAFECHAT_RETENTION_BATCH``); batches are sized within it by their duration.
    Refused (audited, nothing changed) for a room that does not exist, a batch size that
    is no whole number of at least 1, and while another run works
    (``RetentionBusyError``). A person as ``actor`` (a compliance officer's dry run or
    requested run) must be active and hold ``compliance.manage_retention`` now (refused,
    audited ``retention.run.refused``), and again before every batch: a right withdrawn
    mid-run stops it there (``RetentionRightWithdrawnError``, audited; the run's state
    ``refused``; what it committed stands). The system's own runs need no person.
    """
    if isinstance(actor, User):
        require_permission(
            actor=actor, permission=MANAGE_RETENTION, action=AuditAction.RETENTION_RUN_REFUSED
        )
    if room_id is not None and (
        isinstance(room_id, bool)
        or not isinstance(room_id, int)
        or not Room.objects.filter(pk=room_id).exists()
    ):
        raise refused(
            actor=actor,
            action=AuditAction.RETENTION_RUN_REFUSED,
            reason="no such room",
            message=f"there is no room {room_id}",
            room=str(room_id)[:40],
            dry_run=dry_run,
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise refused(
            actor=actor,
            action=AuditAction.RETENTION_RUN_REFUSED,
            reason="bad batch size",
            message="a batch size is a whole number of at least 1",
            batch_size=str(batch_size)[:40],
            dry_run=dry_run,
        )
    limit = batch_size or settings.SAFECHAT_RETENTION_BATCH
    scope = _rooms_in_scope(room_id)
    if dry_run:
        return _dry_run(actor=actor, scope=scope, room_id=room_id)
    return _real_run(actor=actor, scope=scope, room_id=room_id, limit=limit)
