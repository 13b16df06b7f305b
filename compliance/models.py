"""Retention policies, legal holds, retention runs and what a purge leaves behind.

None of these rows holds content: a policy is a number of days, a hold names rooms and
people with a reason and a matter, a run counts, a tombstone says that a message with
this id existed in this room, when it was sent, and which run purged it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from accounts.models import User
from rooms.models import Room


class RetentionPolicy(models.Model):
    """How long content is kept: the organisation's default (``room`` empty) or a room's
    override. ``keep_days`` empty means forever. Never below
    ``SAFECHAT_RETENTION_MINIMUM_DAYS`` (checked by ``retention_policy_set``)."""

    room = models.OneToOneField(
        Room, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    keep_days = models.PositiveIntegerField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            # One organisation default: room ids start at 1, so 0 stands for "none".
            models.UniqueConstraint(Coalesce("room", 0), name="compliance_policy_one_per_scope"),
        ]
        permissions = [
            ("manage_retention", "Can set retention policies and run retention"),
        ]

    def __str__(self) -> str:
        scope = "organisation default" if self.room_id is None else f"room {self.room_id}"
        kept = "forever" if self.keep_days is None else f"{self.keep_days} days"
        return f"{scope}: {kept}"


class LegalHold(models.Model):
    """While active (not released), nothing it covers is purged or shredded.

    It covers the messages and files of ``rooms``, and of ``custodians``: what each of
    them sent or uploaded in any room, and everything in the direct conversations they
    take part in; optionally only what was written between ``starts_on`` and ``ends_on``
    (inclusive UTC days).
    """

    matter = models.CharField("matter reference", max_length=120)
    reason = models.TextField(max_length=2000)
    rooms = models.ManyToManyField(Room, blank=True, related_name="+")
    custodians = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    placed_at = models.DateTimeField()
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(max_length=2000, blank=True)

    class Meta:
        ordering = ["-placed_at", "-pk"]
        indexes = [models.Index(fields=["released_at"], name="compliance_hold_active")]
        constraints = [
            models.CheckConstraint(condition=~Q(matter=""), name="compliance_hold_matter"),
            models.CheckConstraint(condition=~Q(reason=""), name="compliance_hold_reason"),
            models.CheckConstraint(
                condition=Q(starts_on__isnull=True)
                | Q(ends_on__isnull=True)
                | Q(ends_on__gte=F("starts_on")),
                name="compliance_hold_range_ordered",
            ),
            models.CheckConstraint(
                condition=Q(released_at__isnull=True, released_by__isnull=True, release_reason="")
                | Q(released_at__isnull=False, released_by__isnull=False) & ~Q(release_reason=""),
                name="compliance_hold_release_complete",
            ),
        ]
        permissions = [("manage_legal_holds", "Can place and release legal holds")]

    def __str__(self) -> str:
        return f"hold {self.pk} ({self.matter})"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class RetentionRun(models.Model):
    """One run of the retention job; its counts grow batch by batch, in each batch's
    transaction, so they always say what was committed."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"
        FAILED = "failed", "failed"
        INTERRUPTED = "interrupted", "interrupted (found dead by a later run)"
        REFUSED = "refused", "refused (its requester's right was withdrawn)"

    dry_run = models.BooleanField(default=False)
    # The one room the run was limited to (``--room``), or none.
    room_scope = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # While running: renewed at every batch; a run past it is taken for dead (SQLite;
    # PostgreSQL knows from the run's session lock).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    messages = models.PositiveBigIntegerField(default=0)
    revisions = models.PositiveBigIntegerField(default=0)
    reactions = models.PositiveBigIntegerField(default=0)
    mentions = models.PositiveBigIntegerField(default=0)
    files = models.PositiveBigIntegerField(default=0)
    epochs_shredded = models.PositiveBigIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            # Two runs never work at once: the database has the last word.
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="running"),
                name="compliance_run_one_running",
            ),
        ]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "run"
        return f"retention {kind} {self.pk} ({self.state})"


class MessageTombstone(models.Model):
    """What stays of a purged message: that it existed, where, when, and which run purged
    it. A gap in a room's message numbers with a tombstone is "purged by policy"; without
    one it is "never existed" or tampering."""

    message_id = models.BigIntegerField(unique=True)
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField()
    sent_at = models.DateTimeField()
    purged_at = models.DateTimeField()
    run = models.ForeignKey(RetentionRun, on_delete=models.PROTECT, related_name="tombstones")

    class Meta:
        ordering = ["room", "seq"]
        indexes = [
            # A purge batch stamps its tombstones with one instant, which its audit event
            # records: ``tombstones_verify`` finds a batch's tombstones by it.
            models.Index(fields=["run", "purged_at"], name="compliance_tombstone_batch"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="compliance_tombstone_seq"),
        ]

    def __str__(self) -> str:
        return f"message {self.message_id} (room {self.room_id}, #{self.seq}) purged"


class BlobPurge(models.Model):
    """A purged file's blobs, to be removed after the purge commits. Inserted in the
    purge's transaction and deleted once the blobs are gone, so a run killed in between
    leaves the removal to the next run."""

    prefix = models.CharField(max_length=100, unique=True)
    run = models.ForeignKey(RetentionRun, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"blobs under {self.prefix}"


class RoomReview(Room):
    """A room as a compliance officer reviews it: its content opened through the
    compliance key (``compliance.selectors.review``). A proxy: no table, only the admin's
    entry and the permission ``compliance.review_content``."""

    class Meta:
        proxy = True
        verbose_name = "room content review"
        permissions = [
            (
                "review_content",
                "Can read rooms' and custodians' content through the compliance key",
            ),
        ]


class CustodianReview(User):  # type: ignore[django-manager-missing]
    """A person as a custodian whose messages a compliance officer reviews (a proxy)."""

    class Meta:
        proxy = True
        verbose_name = "custodian content review"


class ExportRequest(models.Model):
    """An eDiscovery export, asked for by one compliance officer and decided by another
    (four eyes). Its scope (rooms and/or custodians, an inclusive range of UTC days, the
    matter, the recipient key, the download limit) is fixed when it is requested; the
    approver names it by its digest (``compliance.selectors.exports.export_scope_digest``).

    States: ``requested`` → ``approved`` or ``refused``; ``approved`` → ``running`` →
    ``finished`` or ``failed``; ``finished`` → ``expired``. The database holds the
    invariants each state implies (who decided, when, that the decider is not the
    requester, that downloads never pass their limit)."""

    class State(models.TextChoices):
        REQUESTED = "requested", "requested (awaiting a second officer)"
        APPROVED = "approved", "approved"
        REFUSED = "refused", "refused"
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"
        FAILED = "failed", "failed"
        EXPIRED = "expired", "expired"

    matter = models.CharField("matter reference", max_length=120)
    reason = models.TextField(max_length=2000)
    rooms = models.ManyToManyField(Room, blank=True, related_name="+")
    custodians = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    starts_on = models.DateField()
    ends_on = models.DateField()
    # An HPKE public key (base64) to encrypt the archive to; empty: the requester's own.
    recipient_public_key = models.TextField(max_length=4000, blank=True)
    max_downloads = models.PositiveSmallIntegerField(default=3)
    scope_digest = models.CharField(max_length=64, editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.REQUESTED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(max_length=2000, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    downloads = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        indexes = [models.Index(fields=["state"], name="compliance_export_state")]
        constraints = [
            models.CheckConstraint(condition=~Q(matter=""), name="compliance_export_matter"),
            models.CheckConstraint(condition=~Q(reason=""), name="compliance_export_reason"),
            models.CheckConstraint(
                condition=Q(ends_on__gte=F("starts_on")), name="compliance_export_range_ordered"
            ),
            models.CheckConstraint(
                condition=Q(max_downloads__gte=1, downloads__lte=F("max_downloads")),
                name="compliance_export_download_limit",
            ),
            models.CheckConstraint(
                condition=Q(state="requested", decided_by__isnull=True, decided_at__isnull=True)
                | ~Q(state="requested") & Q(decided_by__isnull=False, decided_at__isnull=False),
                name="compliance_export_decided",
            ),
            # Four eyes, in the database too: nobody decides their own request.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="compliance_export_four_eyes",
            ),
            models.CheckConstraint(
                condition=~Q(state="refused") | ~Q(decision_note=""),
                name="compliance_export_refusal_reason",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["requested", "approved", "refused"])
                | Q(started_at__isnull=False),
                name="compliance_export_started",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["finished", "expired"])
                | Q(finished_at__isnull=False, expires_at__isnull=False),
                name="compliance_export_finished",
            ),
        ]
        permissions = [
            ("request_export", "Can request an eDiscovery export"),
            ("approve_export", "Can approve or refuse another officer's eDiscovery export"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.matter}, {self.state})"


# Supervision review: its own module, re-exported here for Django and for callers.
from compliance.models_supervision import (  # noqa: E402
    SupervisionItem,
    SupervisionLexicon,
    SupervisionRun,
    SupervisionSampling,
    SupervisionTerm,
    SupervisionVersion,
)

__all__ = [
    "BlobPurge",
    "CustodianReview",
    "ExportRequest",
    "LegalHold",
    "MessageTombstone",
    "RetentionPolicy",
    "RetentionRun",
    "RoomReview",
    "SupervisionItem",
    "SupervisionLexicon",
    "SupervisionRun",
    "SupervisionSampling",
    "SupervisionTerm",
    "SupervisionVersion",
]
