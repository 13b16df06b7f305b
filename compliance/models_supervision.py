"""Supervision review (FINRA Rule 3110): lexicons, sampling rates, matching runs and the
review queue. Re-exported by ``compliance.models``.

No row holds content. A lexicon's terms are the compliance officers' own words and
patterns, not anybody's messages. A queue item names a message (by id and revision), the
lexicons whose terms matched it or that it was sampled, and its hits (which term matched
where) encrypted under the message's own epoch key: shredding the epoch destroys them
with the message. A reviewer's note (an escalation's note, a closing reason) often quotes
the message, so it is content too: it is sealed under the same epoch key, never stored
as text.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from rooms.models import Room

RATE_SCALE = 10_000  # sampling rates are in basis points: 10,000 is every message


class SupervisionLexicon(models.Model):
    """A named list of terms that flag a message for review (``SupervisionTerm``)."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(max_length=2000, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="compliance_lexicon_name"),
        ]
        permissions = [
            (
                "supervise",
                "Can manage supervision lexicons and sampling, run matching and review "
                "flagged messages",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SupervisionTerm(models.Model):
    """A phrase or an RE2 pattern (``compliance.lexicon``), with an optional checksum a
    match must pass. Removed terms stay (inactive) so past hits keep their meaning."""

    class Kind(models.TextChoices):
        PHRASE = "phrase", "phrase"
        PATTERN = "pattern", "pattern (RE2)"

    class Check(models.TextChoices):
        NONE = "", "none"
        LUHN = "luhn", "Luhn check digit (card numbers)"
        IBAN = "iban", "IBAN mod-97"

    lexicon = models.ForeignKey(SupervisionLexicon, on_delete=models.PROTECT, related_name="terms")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=200)
    checksum = models.CharField(max_length=8, choices=Check.choices, blank=True, default="")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["lexicon", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["lexicon", "kind", "value", "checksum"], name="compliance_term_unique"
            ),
            models.CheckConstraint(condition=~Q(value=""), name="compliance_term_value"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value!r}"


class SupervisionSampling(models.Model):
    """The share of unflagged messages sent to review at random: the organisation's
    default (neither room nor custodian), a room's, or a custodian's (who sent it). A
    custodian's rate wins over a room's, a room's over the default; none: 0."""

    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    custodian = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    rate = models.PositiveIntegerField(help_text="basis points: 100 is 1%, 10,000 every message")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "supervision sampling rate"
        constraints = [
            models.CheckConstraint(
                condition=Q(room__isnull=True) | Q(custodian__isnull=True),
                name="compliance_sampling_one_scope",
            ),
            models.CheckConstraint(
                condition=Q(rate__lte=RATE_SCALE), name="compliance_sampling_rate_range"
            ),
            models.UniqueConstraint(
                Coalesce("room", 0), Coalesce("custodian", 0), name="compliance_sampling_scope"
            ),
        ]

    def __str__(self) -> str:
        scope = (
            f"room {self.room_id}"
            if self.room_id
            else f"custodian {self.custodian_id}"
            if self.custodian_id
            else "organisation default"
        )
        return f"{scope}: {self.rate / 100:g}%"


class SupervisionRun(models.Model):
    """One matching run over the messages written since the last one; its counts and its
    cursor grow batch by batch, in each batch's transaction."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"
        FAILED = "failed", "failed"
        INTERRUPTED = "interrupted", "interrupted (found dead by a later run)"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # New messages: ids above ``after_id`` up to ``upto_id`` (the highest when it
    # started); ``last_id`` is its cursor, the last one it read.
    after_id = models.BigIntegerField(default=0)
    upto_id = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    # Edited messages: every edit leaves an earlier text (``MessageRevision``); the
    # messages of earlier texts with ids above ``revisions_after_id`` up to
    # ``revisions_upto_id`` are read again, their current text matched.
    revisions_after_id = models.BigIntegerField(default=0)
    revisions_upto_id = models.BigIntegerField(default=0)
    revisions_last_id = models.BigIntegerField(default=0)
    terms = models.PositiveIntegerField(default=0)
    scanned = models.PositiveBigIntegerField(default=0)
    flagged = models.PositiveBigIntegerField(default=0)
    sampled = models.PositiveBigIntegerField(default=0)
    unreadable = models.PositiveBigIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="running"),
                name="compliance_supervision_one_running",
            ),
        ]

    def __str__(self) -> str:
        return f"supervision run {self.pk} ({self.state})"


class SupervisionItem(models.Model):
    """A message (one revision of it) in the review queue: flagged by a lexicon, or
    sampled. ``hits`` is the encrypted list of (term, start, end) in the normalised text
    (``compliance.services.supervision``); never the text. The escalation's note and the
    closing reason are sealed the same way (``*_sealed``); never as text.

    ``pending`` → ``escalated`` → ``closed``, or ``pending`` → ``closed``. Nobody decides
    an item of a message they sent (a constraint holds it too)."""

    class Reason(models.TextChoices):
        FLAGGED = "flagged", "flagged by a lexicon"
        SAMPLED = "sampled", "sampled at random"

    class State(models.TextChoices):
        PENDING = "pending", "pending review"
        ESCALATED = "escalated", "escalated"
        CLOSED = "closed", "closed"

    # Not a foreign key: retention purges messages and leaves a tombstone; the item stays.
    message_id = models.BigIntegerField()
    revision = models.PositiveIntegerField()
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="+")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField()
    epoch = models.PositiveIntegerField()
    sent_at = models.DateTimeField()
    reason = models.CharField(max_length=8, choices=Reason.choices)
    lexicons = models.ManyToManyField(SupervisionLexicon, blank=True, related_name="items")
    hit_count = models.PositiveIntegerField(default=0)
    hits = models.BinaryField(blank=True, default=b"")
    # The run that queued it; none when it was matched as it was posted or edited.
    run = models.ForeignKey(
        SupervisionRun, on_delete=models.PROTECT, null=True, blank=True, related_name="items"
    )
    created_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    # The reviewers' notes, sealed (AES-256-GCM) under the message's epoch key with
    # associated data naming the item, its message, revision and the field
    # (``compliance.services.supervision.note_aad``); empty when none was given.
    escalation_note_sealed = models.BinaryField(blank=True, default=b"")
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason_sealed = models.BinaryField(blank=True, default=b"")

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["state", "id"], name="compliance_sv_item_queue")]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id", "revision"], name="compliance_sv_item_revision"
            ),
            models.CheckConstraint(
                condition=Q(escalated_by__isnull=True) | ~Q(escalated_by=F("sender")),
                name="compliance_sv_item_not_own_escalation",
            ),
            models.CheckConstraint(
                condition=Q(closed_by__isnull=True) | ~Q(closed_by=F("sender")),
                name="compliance_sv_item_not_own_close",
            ),
            models.CheckConstraint(
                condition=Q(state="pending", escalated_by__isnull=True, closed_by__isnull=True)
                | Q(state="escalated", escalated_by__isnull=False, closed_by__isnull=True)
                & ~Q(escalation_note_sealed=b"")
                | Q(state="closed", closed_by__isnull=False, closed_at__isnull=False)
                & ~Q(close_reason_sealed=b""),
                name="compliance_sv_item_state",
            ),
        ]

    def __str__(self) -> str:
        return f"supervision item {self.pk} (message {self.message_id}, {self.state})"


class SupervisionVersion(models.Model):
    """One row (id 1) that every change of lexicons, terms or sampling rates changes, in
    the change's own transaction: the version under which each process keeps the
    compiled matcher and the sampling rates it matches posts with
    (``compliance.services.supervision``). A new random value each time, never reused,
    so a version rolled back is never mistaken for a later one."""

    version = models.UUIDField()
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="compliance_sv_version_one_row"),
        ]

    def __str__(self) -> str:
        return f"supervision version {self.version}"
