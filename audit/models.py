"""The append-only audit log: events, the chain head and signed checkpoints.

Rows are written only by ``audit.services``. The ORM refuses to change or delete
them (for every user, superusers included) and database triggers refuse it again
below the ORM (``audit/triggers.py``), so neither a bug nor a raw query can.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models


class AuditLogImmutableError(Exception):
    """An attempt to change or delete an audit row: the log is append-only."""


def _refuse(what: str) -> NoReturn:
    raise AuditLogImmutableError(f"the audit log is append-only: {what} refused")


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        _refuse("update()")

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse("delete()")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        _refuse("bulk_update()")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update_or_create()")


class AppendOnlyModel(models.Model):
    """Inserted once, never saved again, never deleted."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse(f"changing {type(self).__name__} {self.pk}")
        # force_insert: even an explicit pk never turns this into an UPDATE.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(f"deleting {type(self).__name__} {self.pk}")


class AuditEvent(AppendOnlyModel):
    """One audited action. ``hash`` covers every other field and ``prev_hash``."""

    ACTOR_USER = "user"
    ACTOR_ANONYMOUS = "anonymous"
    ACTOR_SYSTEM = "system"
    ACTOR_TYPES = [
        (ACTOR_USER, "user"),
        (ACTOR_ANONYMOUS, "anonymous"),
        (ACTOR_SYSTEM, "system"),
    ]

    # The chain position, gap-free from 1; also the primary key (no separate id).
    seq = models.BigIntegerField(primary_key=True)
    version = models.PositiveSmallIntegerField(default=1, help_text="canonical form version")
    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ACTOR_TYPES)
    # No foreign key: the log outlives users and must not cascade or block deletes.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    # Canonical version 2: the channel the action came through (portal, api, admin,
    # websocket, task, command) and the API token it used. A database default, so a
    # writer of the earlier schema still inserts (its version 1 events hash without them).
    channel = models.CharField(max_length=16, blank=True, default="", db_default="")
    token_id = models.BigIntegerField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    # Unique: two events claiming one predecessor would be a fork, refused by the database.
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit event"
        verbose_name_plural = "audit events"
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_event_target_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_event_seq_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_username or self.actor_type}"


class AuditChainHead(models.Model):
    """The single row every writer locks: last seq, last hash and last time.

    Serialising on this row keeps the chain unforked and gap-free, and lets a
    writer append without scanning the events table. Its triggers allow UPDATE only.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    last_occurred_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "audit chain head"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_chain_head_single_row"),
        ]

    def __str__(self) -> str:
        return f"chain head at seq {self.last_seq}"

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleting the chain head")


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement "the chain reached ``head_hash`` at ``seq``".

    Signed with the audit signing key, which never lives in the database; also
    appended to the anchor file (and syslog) outside it.
    """

    seq = models.BigIntegerField(unique=True)
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit checkpoint"
        verbose_name_plural = "audit checkpoints"

    def __str__(self) -> str:
        return f"checkpoint at seq {self.seq}"
