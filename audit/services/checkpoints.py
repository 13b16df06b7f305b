"""Signed checkpoints of the chain head, copied to anchors outside the database."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit import signing
from audit.actions import AuditAction
from audit.actors import SYSTEM_AUDIT
from audit.anchors import anchor_append
from audit.chain import checkpoint_signed_bytes, format_time, key_id_for
from audit.models import AuditCheckpoint
from audit.selectors import audit_checkpoint_last_seq
from audit.services.record import actor_snapshot, append_locked, chain_head_locked


def audit_checkpoint_write(*, force: bool = False) -> AuditCheckpoint | None:
    """Sign the chain head and store the checkpoint; None when nothing is new.

    The checkpoint covers its own ``audit.checkpoint.written`` event: the event is
    appended first and the signature is over the head including it, so an idle
    log gets no new checkpoints and no new events. Serialised with every writer by
    the head lock, so two concurrent calls write one checkpoint. After commit the
    checkpoint is appended to the anchor file (and syslog). ``force`` writes one
    even when the head is already covered (an export that needs a fresh anchor).
    """
    # Load the key before locking: a missing key must fail without holding writers.
    key = signing.signing_key()
    key_id = key_id_for(key.public_key())
    with transaction.atomic():
        head = chain_head_locked()
        last_checkpoint = audit_checkpoint_last_seq()
        if not force and (head.last_seq == 0 or last_checkpoint == head.last_seq):
            return None
        append_locked(
            head=head,
            schedule_checkpoint=False,
            action=AuditAction.AUDIT_CHECKPOINT_WRITTEN,
            actor=actor_snapshot(SYSTEM_AUDIT),
            target_type="",
            target_id="",
            source_ip=None,
            user_agent="",
            request_id="",
            extra={"key_id": key_id, "previous_checkpoint_seq": last_checkpoint or 0},
        )
        created_at = timezone.now()
        signature = key.sign(
            checkpoint_signed_bytes(
                seq=head.last_seq, head_hash=head.last_hash, created_at=created_at, key_id=key_id
            )
        ).hex()
        checkpoint = AuditCheckpoint(
            seq=head.last_seq,
            head_hash=head.last_hash,
            created_at=created_at,
            key_id=key_id,
            signature=signature,
        )
        checkpoint.save()
        record = {
            "seq": checkpoint.seq,
            "head_hash": checkpoint.head_hash,
            "created_at": format_time(created_at),
            "key_id": key_id,
            "signature": signature,
        }
        transaction.on_commit(lambda: anchor_append(checkpoint=record))
    return checkpoint
