"""Verification of the whole log: chain, checkpoints, anchors, head and triggers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection, transaction

from audit import signing, triggers
from audit.actions import AuditAction
from audit.actors import SYSTEM_AUDIT
from audit.anchors import (
    AnchorFileError,
    anchor_file_path,
    anchor_records,
    anchors_off,
    database_identity,
)
from audit.chain import (
    GENESIS_HASH,
    KIND_BAD_SIGNATURE,
    KIND_CHECKPOINT_MISMATCH,
    KIND_DELETED,
    KIND_INSERTED,
    KIND_MALFORMED,
    ChainProblem,
    ChainReport,
    chain_verify,
    checkpoint_signature_valid,
    format_time,
)
from audit.selectors import (
    DEFAULT_CHUNK_SIZE,
    audit_chain_head_get,
    audit_checkpoint_get,
    audit_checkpoint_last_seq,
    audit_checkpoint_rows,
    audit_event_rows,
    audit_events_beyond_head,
)
from audit.services.record import audit_record


@dataclass(frozen=True)
class AuditVerification:
    """What ``audit_chain_verify`` found. ``problems`` is ordered by seq."""

    chain: ChainReport
    anchors_checked: int
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def summary(self) -> str:
        """One line: what was verified, or the first broken seq and what is wrong."""
        if self.problems:
            first = self.problems[0]
            more = (
                f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
            )
            where = f" at seq {first.seq}" if first.seq else ""
            return f"audit log BROKEN{where}: {first.kind}: {first.detail}{more}"
        report = self.chain
        if report.events == 0:
            return "audit log intact: no events yet"
        return (
            f"audit log intact: {report.events} events (seq {report.first_seq}-{report.last_seq}), "
            f"{report.checkpoints} checkpoints, {self.anchors_checked} anchors verified; "
            f"head {report.last_hash[:16]}"
        )


def _anchor_problems(
    path: Path,
    *,
    keys: Mapping[str, Ed25519PublicKey],
    verified_up_to: int,
    head_seq: int,
    database: str | None = None,
) -> tuple[int, list[ChainProblem]]:
    """Each anchor line must be signed, and the database must still hold it unchanged.
    Reads the lines naming ``database`` (default: this connection's identity)."""
    problems: list[ChainProblem] = []
    checked = 0
    try:
        for record in anchor_records(path, database=database or database_identity()):
            checked += 1
            seq = int(record["seq"])
            if not checkpoint_signature_valid(record, keys):
                problems.append(
                    ChainProblem(seq, KIND_BAD_SIGNATURE, "anchor file line does not verify")
                )
                continue
            if seq > head_seq:
                problems.append(
                    ChainProblem(
                        seq,
                        KIND_DELETED,
                        f"an anchored checkpoint signs seq {seq} "
                        f"but the chain head is at {head_seq}",
                    )
                )
                continue
            stored = audit_checkpoint_get(seq=seq)
            if stored is None:
                problems.append(
                    ChainProblem(
                        seq, KIND_DELETED, "an anchored checkpoint is missing from the database"
                    )
                )
            elif (
                stored.head_hash != record["head_hash"]
                or stored.signature != record["signature"]
                or format_time(stored.created_at) != record["created_at"]
            ):
                problems.append(
                    ChainProblem(
                        seq,
                        KIND_CHECKPOINT_MISMATCH,
                        "the database checkpoint differs from the anchor file",
                    )
                )
            elif seq > verified_up_to:
                # Written while we verified: its hash was not compared with the chain.
                continue
    except (AnchorFileError, KeyError, TypeError, ValueError) as exc:
        problems.append(ChainProblem(0, KIND_MALFORMED, f"anchor file unreadable: {exc}"))
    except OSError as exc:
        problems.append(
            ChainProblem(0, KIND_MALFORMED, f"anchor file {path} unreadable: {exc.strerror}")
        )
    return checked, problems


def audit_chain_verify(
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    anchor_file: Path | None = None,
    use_anchor_file: bool = True,
    record: bool = False,
    anchor_database: str | None = None,
) -> AuditVerification:
    """Re-compute the whole chain and check every checkpoint and anchor.

    Streams events and checkpoints ordered by seq in chunks: constant memory for
    any length. Events appended while it runs are left for the next run (it
    verifies up to the head it saw first). Finds: edited rows, deleted rows
    (gaps, a truncated tail behind the head, checkpoints beyond the chain),
    reordered rows, rows inserted beyond the head, bad checkpoint signatures,
    checkpoints or anchors that differ from the chain (a consistent rewrite is
    reported as the range between the last matching checkpoint and the first
    that differs), a missing or unreadable anchor file (unless anchors are
    ``off``), and triggers or the append function not exactly as installed.
    ``anchor_database`` reads the anchor lines written under another database identity
    (a restored copy: docs/operations.md, "Backup and restore"). With
    ``record``, the result is appended as ``audit.verified`` or
    ``audit.verification.failed``.
    """
    keys = signing.trusted_public_keys()
    head = audit_chain_head_get()
    head_seq = head.last_seq if head is not None else 0
    report = chain_verify(
        audit_event_rows(to_seq=head_seq, chunk_size=chunk_size),
        checkpoints=audit_checkpoint_rows(to_seq=head_seq, chunk_size=chunk_size),
        public_keys=keys,
        first_prev_hash=GENESIS_HASH,
        first_seq=1,
    )
    problems: list[ChainProblem] = []
    if report.problem is not None:
        problems.append(report.problem)
    else:
        verified_seq = report.last_seq or 0
        if head is None and verified_seq:
            problems.append(
                ChainProblem(verified_seq, KIND_DELETED, "the chain head row is missing")
            )
        elif verified_seq < head_seq:
            problems.append(
                ChainProblem(
                    verified_seq + 1,
                    KIND_DELETED,
                    f"seqs {verified_seq + 1}-{head_seq} missing (the chain head is at {head_seq})",
                )
            )
        elif head is not None and report.last_hash != head.last_hash and head_seq:
            problems.append(
                ChainProblem(
                    head_seq, KIND_CHECKPOINT_MISMATCH, "the chain head hash differs from the chain"
                )
            )
    # The head only moves forward: a checkpoint beyond it means the tail was cut.
    now_head = audit_chain_head_get()
    now_head_seq = now_head.last_seq if now_head is not None else 0
    last_checkpoint = audit_checkpoint_last_seq()
    if last_checkpoint is not None and last_checkpoint > now_head_seq:
        problems.append(
            ChainProblem(
                last_checkpoint,
                KIND_DELETED,
                f"a checkpoint signs seq {last_checkpoint} but the chain head is at {now_head_seq}",
            )
        )
    # Nothing may exist past the head: appends write the event and move the head together.
    beyond = audit_events_beyond_head() if now_head is not None else None
    if beyond:
        first, count = beyond
        problems.append(
            ChainProblem(
                first,
                KIND_INSERTED,
                f"{count} event(s) from seq {first} lie beyond the chain head "
                f"(at {now_head_seq}): written around the append function",
            )
        )
    anchors_checked = 0
    if use_anchor_file and not anchors_off():
        path = anchor_file if anchor_file is not None else anchor_file_path()
        if path is None:
            problems.append(
                ChainProblem(
                    0,
                    KIND_MALFORMED,
                    "no anchor file is configured (set SAFECHAT_AUDIT_ANCHOR_FILE, or 'off')",
                )
            )
        elif not path.exists():
            if head_seq or last_checkpoint is not None:
                problems.append(
                    ChainProblem(0, KIND_MALFORMED, f"the anchor file {path} is missing")
                )
        else:
            anchors_checked, anchor_problems = _anchor_problems(
                path,
                keys=keys,
                verified_up_to=report.last_seq or 0,
                head_seq=now_head_seq,
                database=anchor_database,
            )
            problems.extend(anchor_problems)
    trigger_problems = triggers.trigger_problems(connection)
    if trigger_problems:
        problems.append(
            ChainProblem(
                0,
                KIND_MALFORMED,
                "append-only triggers missing, disabled or changed: " + "; ".join(trigger_problems),
            )
        )
    # Problems of a seq first, lowest first; then those of the log as a whole (seq 0).
    problems.sort(key=lambda problem: (problem.seq == 0, problem.seq))
    result = AuditVerification(chain=report, anchors_checked=anchors_checked, problems=problems)
    if record:
        _verification_record(result)
    return result


def _verification_record(result: AuditVerification) -> None:
    with transaction.atomic():
        if result.intact:
            audit_record(
                actor=SYSTEM_AUDIT,
                action=AuditAction.AUDIT_VERIFIED,
                extra={
                    "events": result.chain.events,
                    "last_seq": result.chain.last_seq or 0,
                    "checkpoints": result.chain.checkpoints,
                    "anchors": result.anchors_checked,
                },
            )
        else:
            first = result.problems[0]
            audit_record(
                actor=SYSTEM_AUDIT,
                action=AuditAction.AUDIT_VERIFICATION_FAILED,
                extra={
                    "seq": first.seq,
                    "kind": first.kind,
                    "detail": first.detail[:500],
                    "problems": len(result.problems),
                },
            )
