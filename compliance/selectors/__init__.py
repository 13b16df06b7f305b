"""Reads of retention and legal holds: the policy in force, what the active holds cover.

``held_messages`` / ``held_files`` turn the active holds into one database condition, so
a purge leaves out everything held in the same statement that picks what expired.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce

from audit.models import AuditEvent
from compliance import locks
from compliance.models import LegalHold, MessageTombstone, RetentionPolicy
from files.models import StoredFile
from rooms.holds import HoldRules
from rooms.models import Membership, Message, MessageRevision, Room, RoomChange
from safechat.keyring.models import RoomEpoch


@dataclass(frozen=True)
class HoldScope:
    """What one active hold covers: rooms, custodians (with their direct conversations),
    and the span of writing times (``None``: unbounded on that side)."""

    hold_id: int
    rooms: frozenset[int]
    custodians: frozenset[int]
    direct_rooms: frozenset[int]
    start: datetime | None
    end: datetime | None  # exclusive

    def overlaps(self, first: datetime, last: datetime | None) -> bool:
        """Whether [first, last) meets the hold's span (``last`` None: still open)."""
        if self.end is not None and first >= self.end:
            return False
        return not (self.start is not None and last is not None and last <= self.start)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def hold_scope(hold: LegalHold) -> HoldScope:
    custodians = frozenset(hold.custodians.values_list("pk", flat=True))
    return HoldScope(
        hold_id=hold.pk,
        rooms=frozenset(hold.rooms.values_list("pk", flat=True)),
        custodians=custodians,
        direct_rooms=custodian_direct_rooms(custodians),
        start=day_start(hold.starts_on) if hold.starts_on else None,
        end=_day_after(hold.ends_on),
    )


def custodian_direct_rooms(custodians: frozenset[int]) -> frozenset[int]:
    """The direct conversations the custodians take part in or ever took part in: a
    member now, or added once (the change feed's ``member.added``, append-only), so one
    whom a security admin removed to resolve a barrier still holds all of it."""
    if not custodians:
        return frozenset()
    ids = sorted(custodians)
    now = Membership.objects.filter(user_id__in=ids, room__kind=Room.Kind.DIRECT)
    added = RoomChange.objects.filter(kind=RoomChange.Kind.MEMBER_ADDED, user_id__in=ids)
    once = Room.objects.filter(kind=Room.Kind.DIRECT, pk__in=added.values("room_id"))
    return frozenset(now.values_list("room_id", flat=True)) | frozenset(
        once.values_list("pk", flat=True)
    )


def _day_after(day: date | None) -> datetime | None:
    """The start of the day after ``day`` (UTC): a range's exclusive end. None (no end)
    for no day, or for the last day a date can name (nothing comes after it)."""
    if day is None or day == date.max:
        return None
    return day_start(day + timedelta(days=1))


def active_hold_scopes() -> list[HoldScope]:
    return [hold_scope(h) for h in LegalHold.objects.filter(released_at__isnull=True)]


def _span(scope: HoldScope, *, first: str, last: str) -> Q:
    span = Q()
    if scope.end is not None:
        span &= Q(**{f"{first}__lt": scope.end})
    if scope.start is not None:
        span &= Q(**{f"{last}__gte": scope.start})
    return span


def messages_with_last_write(queryset: QuerySet[Message]) -> QuerySet[Message]:
    """Messages annotated with ``last_written``: the last edit, or the sending."""
    return queryset.annotate(last_written=Coalesce("edited_at", "created_at"))


def held_messages(scopes: list[HoldScope]) -> Q | None:
    """The condition (on messages annotated by ``messages_with_last_write``) of what the
    holds cover: a message is held if written in a held room, by a custodian, or in a
    custodian's direct conversation, within the hold's span. None: nothing is held."""
    held: Q | None = None
    for scope in scopes:
        rooms = scope.rooms | scope.direct_rooms
        who = Q(room_id__in=sorted(rooms)) | Q(sender_id__in=sorted(scope.custodians))
        if not rooms and not scope.custodians:
            continue
        this = who & _span(scope, first="created_at", last="last_written")
        held = this if held is None else held | this
    return held


def held_files(scopes: list[HoldScope]) -> Q | None:
    """The same for files that no message shares (their upload time counts)."""
    held: Q | None = None
    for scope in scopes:
        rooms = scope.rooms | scope.direct_rooms
        if not rooms and not scope.custodians:
            continue
        who = Q(room_id__in=sorted(rooms)) | Q(uploader_id__in=sorted(scope.custodians))
        this = who & _span(scope, first="created_at", last="created_at")
        held = this if held is None else held | this
    return held


def room_held(room_id: int) -> bool:
    """Whether an active hold covers anything of the room (derived ``legal_hold``)."""
    for scope in active_hold_scopes():
        if room_id in scope.rooms or room_id in scope.direct_rooms:
            return True
        if scope.custodians:
            covered = held_messages([scope])
            if (
                covered is not None
                and messages_with_last_write(Message.objects.filter(room_id=room_id))
                .filter(covered)
                .exists()
            ):
                return True
            files = held_files([scope])
            if (
                files is not None
                and StoredFile.objects.filter(room_id=room_id).filter(files).exists()
            ):
                return True
    return False


def epoch_held(room_id: int, number: int) -> bool:
    """Whether an active hold covers anything the epoch protects: a held room's or a
    custodian's direct conversation's epoch whose life meets the hold's span, or a
    custodian's message, earlier text or file under it."""
    epoch = RoomEpoch.objects.filter(room_id=room_id, number=number).first()
    if epoch is None:
        return False
    following = RoomEpoch.objects.filter(room_id=room_id, number__gt=number).order_by("number")
    next_epoch = following.first()
    ended = next_epoch.created_at if next_epoch is not None else None
    for scope in active_hold_scopes():
        in_room = room_id in scope.rooms or room_id in scope.direct_rooms
        if in_room and scope.overlaps(epoch.created_at, ended):
            return True
        if not scope.custodians:
            continue
        custodians = sorted(scope.custodians)
        span = _span(scope, first="created_at", last="last_written")
        if (
            messages_with_last_write(
                Message.objects.filter(room_id=room_id, epoch=number, sender_id__in=custodians)
            )
            .filter(span)
            .exists()
        ):
            return True
        revision_span = _span(scope, first="created_at", last="created_at")
        if (
            MessageRevision.objects.filter(
                room_id=room_id, epoch=number, message__sender_id__in=custodians
            )
            .filter(revision_span)
            .exists()
        ):
            return True
        if (
            StoredFile.objects.filter(room_id=room_id, epoch=number, uploader_id__in=custodians)
            .filter(revision_span)
            .exists()
        ):
            return True
    return False


HOLD_RULES = HoldRules(
    ledger_lock=locks.ledger_lock_shared, room_held=room_held, epoch_held=epoch_held
)


def policy_for_room(room_id: int) -> int | None:
    """Days a room's content is kept: its override, else the organisation's default, else
    forever (``None``)."""
    rows = {
        p.room_id: p
        for p in RetentionPolicy.objects.filter(Q(room_id=room_id) | Q(room__isnull=True))
    }
    chosen = rows.get(room_id) or rows.get(None)
    return chosen.keep_days if chosen is not None else None


def policies_by_room() -> tuple[int | None, dict[int, int | None]]:
    """The organisation default and every room override (room id -> days)."""
    default: int | None = None
    overrides: dict[int, int | None] = {}
    for policy in RetentionPolicy.objects.all():
        if policy.room_id is None:
            default = policy.keep_days
        else:
            overrides[policy.room_id] = policy.keep_days
    return default, overrides


def shortest_policy_days() -> int | None:
    """The shortest finite policy in force anywhere, or None if everything is kept forever."""
    default, overrides = policies_by_room()
    finite = [d for d in [default, *overrides.values()] if d is not None]
    return min(finite) if finite else None


@dataclass(frozen=True)
class MessageFate:
    """What became of a message id in a room: present, purged (by which run), or unknown."""

    state: str  # "present" | "purged" | "never existed"
    run_id: int | None = None
    purged_at: datetime | None = None


def message_fate(*, room_id: int, message_id: int) -> MessageFate:
    if Message.objects.filter(pk=message_id, room_id=room_id).exists():
        return MessageFate("present")
    tombstone = MessageTombstone.objects.filter(message_id=message_id, room_id=room_id).first()
    if tombstone is not None:
        return MessageFate("purged", run_id=tombstone.run_id, purged_at=tombstone.purged_at)
    return MessageFate("never existed")


def tombstone_ids_digest(ids: list[int]) -> str:
    """SHA-256 of the ascending message ids, comma-separated: what a purge batch's audit
    event records, so its tombstones can be checked against the hash-chained log."""
    joined = ",".join(str(pk) for pk in sorted(ids))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()


def tombstones_verify(*, run_id: int) -> list[str]:
    """Compare a run's tombstones with its ``retention.purged`` audit events; returns the
    problems found (empty: every batch's tombstones are exactly those it recorded).

    A batch's tombstones are those of its run and room stamped with the instant its
    event records (``purged_at``, ISO 8601); events written before batches recorded it
    name their batch by its first and last message id instead.
    """
    problems = []
    events = AuditEvent.objects.filter(action="retention.purged").order_by("seq")
    recorded = 0
    for event in events:
        extra = event.extra or {}
        if extra.get("run") != run_id or not extra.get("messages"):
            continue
        recorded += int(extra["messages"])
        batch = MessageTombstone.objects.filter(run_id=run_id, room_id=int(event.target_id))
        stamp = _instant(extra.get("purged_at"))
        if stamp is not None:
            batch = batch.filter(purged_at=stamp)
        else:
            batch = batch.filter(
                message_id__gte=extra["first_id"], message_id__lte=extra["last_id"]
            )
        ids = list(batch.values_list("message_id", flat=True))
        if tombstone_ids_digest(ids) != extra.get("ids_digest"):
            problems.append(f"audit event #{event.seq}: its tombstones do not match")
    stored = MessageTombstone.objects.filter(run_id=run_id).count()
    if stored != recorded:
        problems.append(f"run {run_id}: {stored} tombstones, {recorded} purges audited")
    return problems


def _instant(value: object) -> datetime | None:
    """An audit event's ISO 8601 instant, or None (absent, or not one)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
