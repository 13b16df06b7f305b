"""The file vault's one table: a file, from its first upload byte to its deletion.

A row holds no plaintext: the name and content type are sealed with the file's own key
(``sealed_metadata``), the plaintext SHA-256 too once the scan has read the whole file
(``sealed_digest``); the file key itself is wrapped by the room's epoch key. The content
is a STREAM ciphertext (``safechat.crypto.stream``) whose 49-byte header is
``stream_header`` and whose chunks are stored as segments (one per upload request) in the
``vault`` storage under ``blob_prefix``; bytes received after the last whole chunk wait in
a sealed tail blob (``tail_name``) until the next request. docs/files.md has the formats.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from rooms.models import Message, Room


class StoredFile(models.Model):
    class State(models.TextChoices):
        UPLOADING = "uploading", "uploading"
        PENDING_SCAN = "pending_scan", "pending scan"
        AVAILABLE = "available", "available"
        INFECTED = "infected", "infected"
        DELETED = "deleted", "deleted"
        EXPIRED = "expired", "expired"
        # Complete, but never shared: at its verdict the room was archived or the uploader
        # could no longer share in it. Kept encrypted for compliance, never shown.
        WITHHELD = "withheld", "withheld"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="files")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.UPLOADING)
    # The file key, wrapped by the room's epoch ``epoch`` key (counted toward its bound).
    epoch = models.PositiveIntegerField()
    wrapped_key = models.BinaryField()
    sealed_metadata = models.BinaryField()
    sealed_digest = models.BinaryField(null=True, blank=True)
    declared_length = models.PositiveBigIntegerField()
    received_offset = models.PositiveBigIntegerField(default=0)
    stream_header = models.BinaryField()
    # Chunks sealed so far (the STREAM counter to resume at), and the first counter of
    # each stored segment, in order.
    chunks_sealed = models.PositiveBigIntegerField(default=0)
    segment_starts = models.JSONField(default=list)
    blob_prefix = models.CharField(max_length=100)
    tail_name = models.CharField(max_length=200, blank=True)
    # One request writes at a time: the lease it holds while it streams.
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    scan_attempts = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    scanned_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The room message that shares the file, posted when it scanned clean: the file takes
    # its place in the room's numbered stream (history rules, ordering, deletion).
    message = models.OneToOneField(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="attachment"
    )
    # The media type of the sealed image preview (blob ``<blob_prefix>/preview``); "" none.
    preview_type = models.CharField(max_length=32, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        indexes = [
            models.Index(fields=["room", "state", "-id"], name="files_room_state_idx"),
            models.Index(fields=["state", "expires_at"], name="files_state_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    state__in=[
                        "uploading",
                        "pending_scan",
                        "available",
                        "infected",
                        "deleted",
                        "expired",
                        "withheld",
                    ]
                ),
                name="files_state_known",
            ),
            models.CheckConstraint(
                condition=Q(received_offset__lte=F("declared_length")),
                name="files_offset_within_length",
            ),
            models.CheckConstraint(
                # Every byte arrived before a file leaves "uploading" for a scan or a verdict.
                condition=~Q(state__in=["pending_scan", "available", "infected", "withheld"])
                | Q(received_offset=F("declared_length"), completed_at__isnull=False),
                name="files_complete_after_upload",
            ),
            models.CheckConstraint(
                # Nothing is available without a clean verdict and its digest.
                condition=~Q(state="available")
                | Q(scanned_at__isnull=False, sealed_digest__isnull=False),
                name="files_available_scanned",
            ),
            models.CheckConstraint(
                condition=~Q(state="infected") | Q(scanned_at__isnull=False) & ~Q(verdict=""),
                name="files_infected_has_verdict",
            ),
            models.CheckConstraint(
                condition=~Q(state="deleted") | Q(deleted_at__isnull=False),
                name="files_deleted_has_time",
            ),
            models.CheckConstraint(
                # A tail holds less than a chunk and only exists while uploading.
                condition=Q(state="uploading") | Q(tail_name=""),
                name="files_tail_only_while_uploading",
            ),
            models.CheckConstraint(
                condition=Q(lease_token="") | Q(lease_expires_at__isnull=False),
                name="files_lease_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"file {self.uid} in room {self.room_id} ({self.state})"

    @property
    def is_complete(self) -> bool:
        return self.received_offset == self.declared_length

    @property
    def upload_open(self) -> bool:
        """Whether bytes may still be appended: uploading and not past its expiry (the
        expiry sweep, which ends it for good, may not have run yet)."""
        return self.state == self.State.UPLOADING and self.expires_at > timezone.now()
