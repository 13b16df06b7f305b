"""Concurrent writers never fork or skip the chain (each thread has its own connection)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from audit import chain
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_event_rows
from audit.services import audit_checkpoint_write, audit_record

WRITERS = 8
EVENTS_PER_WRITER = 25


def _writer(number: int, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        barrier.wait(timeout=30)
        for index in range(EVENTS_PER_WRITER):
            with transaction.atomic():
                audit_record(
                    actor=SystemActor(f"writer-{number}"),
                    action=AuditAction.MESSAGE_POSTED,
                    extra={"writer": number, "index": index},
                )
            if number == 0 and index % 10 == 0:
                # A checkpoint writer competes for the same head lock.
                audit_checkpoint_write()
    except BaseException as exc:
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_unbroken_chain() -> None:
    # given 8 threads, each with its own database connection, released together
    # (PostgreSQL serialises them on SELECT ... FOR UPDATE of the head row, SQLite
    # on its IMMEDIATE write lock: the same test runs on both)
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(number, barrier, errors))
        for number in range(WRITERS)
    ]

    # when they all append at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then every event is there, seqs are 1..n without gaps, and the chain verifies
    assert not errors, errors
    assert connection.vendor in {"postgresql", "sqlite"}
    posted = AuditEvent.objects.filter(action=AuditAction.MESSAGE_POSTED).count()
    assert posted == WRITERS * EVENTS_PER_WRITER
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    report = chain.chain_verify(audit_event_rows())
    assert report.intact, report.problem
    head = AuditChainHead.objects.get()
    assert (head.last_seq, head.last_hash) == (report.last_seq, report.last_hash)
    per_writer = {
        number: [
            extra["index"]
            for extra in AuditEvent.objects.filter(
                action=AuditAction.MESSAGE_POSTED, actor_username=f"system:writer-{number}"
            )
            .order_by("seq")
            .values_list("extra", flat=True)
        ]
        for number in range(WRITERS)
    }
    # each writer's own events are in its order
    assert all(indexes == list(range(EVENTS_PER_WRITER)) for indexes in per_writer.values())


def test_the_advisory_lock_key_in_the_sql_is_the_documented_constant() -> None:
    from audit import pgappend

    key = str(pgappend.AUDIT_CHAIN_LOCK_KEY)
    assert f"pg_advisory_xact_lock({key})" in pgappend.HEAD_LOCK_SQL
    assert f"pg_advisory_xact_lock({key})" in pgappend.LOCK_SQL
    assert f"pg_advisory_xact_lock({key})" in pgappend.CREATE_FUNCTION_SQL
