"""Signed checkpoints of the chain head, copied to anchors outside the database."""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils import timezone

from audit import signing
from audit.actions import AuditAction
from audit.actors import SYSTEM_AUDIT
from audit.anchors import anchor_append
from audit.chain import (
    GENESIS_HASH,
    KIND_BAD_SIGNATURE,
    KIND_DELETED,
    KIND_INSERTED,
    ChainProblem,
    chain_verify,
    checkpoint_signature_valid,
    checkpoint_signed_bytes,
    format_time,
    key_id_for,
)
from audit.models import AuditChainHead, AuditCheckpoint
from audit.selectors import (
    CHECKPOINT_FIELDS,
    audit_checkpoint_last_seq,
    audit_event_rows,
    audit_events_beyond_head,
)
from audit.services.record import acting_channel_token, acting_source, audit_record
from audit.store import AuditChainError, actor_snapshot, append_locked, chain_head_locked

logger = logging.getLogger(__name__)


class AuditSegmentError(AuditChainError):
    """The events since the last checkpoint do not verify: nothing is signed."""

    def __init__(self, problem: ChainProblem) -> None:
        super().__init__(f"refusing to sign a checkpoint: {problem}")
        self.problem = problem


def _segment_problem(head: AuditChainHead) -> ChainProblem | None:
    """Verify what the next checkpoint would sign: the events after the last (signed)
    checkpoint up to the head, linked to that checkpoint's hash, and nothing beyond."""
    last = AuditCheckpoint.objects.order_by("-seq").values(*CHECKPOINT_FIELDS).first()
    if last is not None and not checkpoint_signature_valid(last, signing.trusted_public_keys()):
        return ChainProblem(last["seq"], KIND_BAD_SIGNATURE, "the last checkpoint does not verify")
    if last is not None and last["seq"] > head.last_seq:
        return ChainProblem(head.last_seq + 1, KIND_DELETED, "a checkpoint lies beyond the head")
    start = last["seq"] + 1 if last is not None else 1
    report = chain_verify(
        audit_event_rows(from_seq=start, to_seq=head.last_seq),
        first_prev_hash=last["head_hash"] if last is not None else GENESIS_HASH,
        first_seq=start,
    )
    if report.problem is not None:
        return report.problem
    if head.last_seq >= start and (
        report.last_seq != head.last_seq or report.last_hash != head.last_hash
    ):
        return ChainProblem(head.last_seq, KIND_DELETED, "the head does not match the chain")
    beyond = audit_events_beyond_head()
    if beyond is not None:
        return ChainProblem(beyond[0], KIND_INSERTED, "events lie beyond the chain head")
    return None


def audit_checkpoint_write(*, force: bool = False) -> AuditCheckpoint | None:
    """Sign the chain head and store the checkpoint; None when nothing is new.

    Verifies the segment since the last checkpoint first (its events, their link to
    the last checkpoint, the head, nothing beyond it): if anything is wrong nothing is
    signed, ``audit.verification.failed`` is recorded and ``AuditSegmentError`` raised.
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
    problem: ChainProblem | None = None
    with transaction.atomic():
        head = chain_head_locked()
        last_checkpoint = audit_checkpoint_last_seq()
        if not force and (head.last_seq == 0 or last_checkpoint == head.last_seq):
            return None
        # Sign only what verifies: a forged tail must not be vouched for.
        problem = _segment_problem(head)
        if problem is None:
            return _checkpoint_locked(head, key, key_id, last_checkpoint)
    _refusal_record(problem)
    raise AuditSegmentError(problem)


def _refusal_record(problem: ChainProblem) -> None:
    logger.error("audit checkpoint refused: %s", problem)
    try:
        with transaction.atomic():
            audit_record(
                actor=SYSTEM_AUDIT,
                action=AuditAction.AUDIT_VERIFICATION_FAILED,
                extra={"seq": problem.seq, "kind": problem.kind, "detail": problem.detail[:500]},
            )
    except Exception:
        # A row forged past the head also blocks appends: the log line above remains.
        logger.exception("could not record the refused checkpoint in the audit log")


def _checkpoint_locked(
    head: AuditChainHead, key: Ed25519PrivateKey, key_id: str, last_checkpoint: int | None
) -> AuditCheckpoint:
    # Written by whatever the chain grew under (a task, a request): its context, as any event.
    source_ip, user_agent, request_id = acting_source()
    append_locked(
        head=head,
        action=AuditAction.AUDIT_CHECKPOINT_WRITTEN,
        actor=actor_snapshot(SYSTEM_AUDIT),
        target_type="",
        target_id="",
        source_ip=source_ip,
        user_agent=user_agent,
        request_id=request_id,
        extra={"key_id": key_id, "previous_checkpoint_seq": last_checkpoint or 0},
        channel=acting_channel_token()[0],
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
