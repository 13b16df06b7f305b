"""Audit log throughput: chained appends vs plain inserts, and verification speed and memory.

Usage (PostgreSQL; creates and drops its own database ``<name>_auditbench``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat \\
        .venv/bin/python -m benchmarks.audit_bench [--appends 4000] [--writers 8] \\
        [--verify-sizes 100000,1000000] [--keep]

Prints, from one run on one database:
- events appended per second through ``audit_record`` with 1 and with N writers,
  beside plain ORM inserts of the same rows into a copy of the table (same columns
  and indexes, no chain, no head lock);
- ``verify_audit`` events verified per second and the verifier process's peak RSS
  and tracemalloc peak at each size (1M rows are bulk-loaded with COPY and a chain
  computed in Python). Verification runs in a fresh child process per size, so the
  RSS is the verifier's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.scratch import bench_urls, django_setup

ROOT = Path(__file__).resolve().parent.parent
BENCH_SUFFIX = "_auditbench"


def _bench_url(url: str) -> tuple[str, str, str]:
    """(bench database URL, bench database name, maintenance URL)."""
    return bench_urls(url, BENCH_SUFFIX)


_django_setup = django_setup


# --- Appends ------------------------------------------------------------------


def _row_fields(number: int) -> dict[str, Any]:
    return {
        "extra": {"room_id": number % 97, "message_id": number, "epoch": 3},
        "target": ("rooms.room", str(number % 97)),
    }


def _make_plain_model() -> Any:
    from django.db import models

    class BenchPlainEvent(models.Model):
        seq = models.BigAutoField(primary_key=True)
        version = models.PositiveSmallIntegerField(default=1)
        occurred_at = models.DateTimeField()
        actor_type = models.CharField(max_length=16)
        actor_id = models.BigIntegerField(null=True)
        actor_username = models.CharField(max_length=150)
        action = models.CharField(max_length=64)
        target_type = models.CharField(max_length=64)
        target_id = models.CharField(max_length=128)
        source_ip = models.GenericIPAddressField(null=True)
        user_agent = models.CharField(max_length=256)
        request_id = models.CharField(max_length=64)
        extra = models.JSONField(default=dict)
        prev_hash = models.CharField(max_length=64)
        hash = models.CharField(max_length=64, unique=True)

        class Meta:
            app_label = "audit"
            managed = False
            db_table = "bench_plain_event"

        def __str__(self) -> str:
            return f"plain #{self.seq}"

    return BenchPlainEvent


def _run_writers(
    writers: int, total: int, work: Callable[[int], None], *, processes: bool
) -> float:
    """Events per second for ``total`` calls of ``work`` spread over ``writers``.

    Writers are threads (each with its own connection, like an ASGI worker's
    thread pool) or forked processes (like separate web and Celery workers, and
    free of the GIL, which otherwise stretches the time the head lock is held).
    """
    import multiprocessing

    from django.db import connections

    connections.close_all()  # never share a connection across a fork
    context = multiprocessing.get_context("fork")
    barrier: Any = context.Barrier(writers + 1) if processes else threading.Barrier(writers + 1)
    failed = context.Value("i", 0)

    def run(offset: int) -> None:
        try:
            barrier.wait()
            for number in range(offset, total, writers):
                work(number)
        except BaseException:
            with failed.get_lock():
                failed.value += 1
            raise
        finally:
            connections.close_all()

    workers: list[Any] = [
        (context.Process if processes else threading.Thread)(target=run, args=(offset,))
        for offset in range(writers)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failed.value:
        raise SystemExit(f"{failed.value} writer(s) failed")
    return total / elapsed


def bench_appends(*, appends: int, writers: int, rounds: int) -> dict[str, float]:
    from django.db import connection, transaction
    from django.test import RequestFactory
    from django.utils import timezone

    from audit import chain
    from audit.actions import AuditAction
    from audit.actors import AuditTarget
    from audit.selectors import audit_event_rows
    from audit.services import audit_record
    from tests.accounts.factories import make_user

    plain_model = _make_plain_model()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain_event")
        # Same columns, defaults, constraints and indexes as the audit table; no triggers.
        cursor.execute("CREATE TABLE bench_plain_event (LIKE audit_auditevent INCLUDING ALL)")
        cursor.execute("CREATE SEQUENCE bench_plain_event_seq OWNED BY bench_plain_event.seq")
        cursor.execute(
            "ALTER TABLE bench_plain_event ALTER seq SET DEFAULT nextval('bench_plain_event_seq')"
        )
    user = make_user(username="bench-user")
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Bench/1.0"
    )
    request.request_id = "0123456789abcdef0123456789abcdef"  # type: ignore[attr-defined]

    def chained(number: int) -> None:
        fields = _row_fields(number)
        audit_record(
            actor=user,
            action=AuditAction.MESSAGE_POSTED,
            target=AuditTarget(*fields["target"]),
            extra=fields["extra"],
            request=request,
        )

    def chained_in_transaction(number: int) -> None:
        with transaction.atomic():
            chained(number)

    def plain_in_transaction(number: int) -> None:
        with transaction.atomic():
            plain(number)

    def plain(number: int) -> None:
        fields = _row_fields(number)
        plain_model.objects.create(
            occurred_at=timezone.now(),
            actor_type="user",
            actor_id=user.pk,
            actor_username=user.username,
            action=AuditAction.MESSAGE_POSTED.value,
            target_type=fields["target"][0],
            target_id=fields["target"][1],
            source_ip="10.1.2.3",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Bench/1.0",
            request_id="0123456789abcdef0123456789abcdef",
            extra=fields["extra"],
            # Random, like real hashes: prev_hash is unique (no forks) in both tables.
            prev_hash=secrets.token_hex(32),
            hash=secrets.token_hex(32),
        )

    # Warm up both paths (connections, statement caches). Then interleave plain and
    # chained in several rounds and keep the median: this VM's fsync latency drifts.
    _run_writers(1, 200, plain, processes=False)
    _run_writers(1, 200, chained, processes=False)
    samples: dict[str, list[float]] = {}
    for _round in range(rounds):
        for label, count, processes in (
            ("1", 1, False),
            (f"{writers}t", writers, False),
            (f"{writers}p", writers, True),
        ):
            for kind, work in (
                ("plain", plain),
                ("chained", chained),
                ("plain-tx", plain_in_transaction),
                ("chained-tx", chained_in_transaction),
            ):
                rate = _run_writers(count, appends, work, processes=processes)
                samples.setdefault(f"{kind}_{label}", []).append(rate)
    results = {name: statistics.median(values) for name, values in samples.items()}
    report = chain.chain_verify(audit_event_rows())
    if not report.intact:
        raise SystemExit(f"chain broken after the append benchmark: {report.problem}")
    results["chain_events"] = float(report.events)
    return results


# --- Bulk load and verification -------------------------------------------------


def _generated_events(start_seq: int, count: int, prev_hash: str) -> Iterator[dict[str, Any]]:
    from audit import chain
    from audit.actions import AuditAction

    actions = [action.value for action in AuditAction]
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for seq in range(start_seq, start_seq + count):
        event: dict[str, Any] = {
            "v": 1,
            "seq": seq,
            "occurred_at": chain.format_time(base + timedelta(microseconds=seq * 1500)),
            "actor_type": "user",
            "actor_id": seq % 5000,
            "actor_username": f"user{seq % 5000}",
            "action": actions[seq % len(actions)],
            "target_type": "rooms.room",
            "target_id": str(seq % 997),
            "source_ip": f"10.{seq % 250}.{(seq // 250) % 250}.{seq % 7}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Bench/1.0",
            "request_id": f"{seq:032x}",
            "extra": {"room_id": seq % 997, "message_id": seq},
            "prev_hash": prev_hash,
        }
        event["hash"] = chain.event_hash(event)
        prev_hash = event["hash"]
        yield event


def bulk_load(total: int) -> float:
    """Grow the chain to ``total`` events with COPY (and a checkpoint per 1000); seconds."""
    from django.db import connection
    from django.utils.dateparse import parse_datetime

    from audit import chain, signing, triggers
    from audit.models import AuditChainHead

    started = time.perf_counter()
    head = AuditChainHead.objects.get(pk=1)
    count = total - head.last_seq
    if count <= 0:
        return 0.0
    key = signing.signing_key()
    key_id = chain.key_id_for(key.public_key())
    columns = (
        "seq, version, occurred_at, actor_type, actor_id, actor_username, action, target_type, "
        "target_id, source_ip, user_agent, request_id, extra, prev_hash, hash"
    )
    last: dict[str, Any] = {}
    checkpoints: list[tuple[Any, ...]] = []
    raw = connection.connection
    if raw is None:
        connection.ensure_connection()
        raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy:
            for event in _generated_events(head.last_seq + 1, count, head.last_hash):
                copy.write_row(
                    (
                        event["seq"], 1, event["occurred_at"], event["actor_type"],
                        event["actor_id"], event["actor_username"], event["action"],
                        event["target_type"], event["target_id"], event["source_ip"],
                        event["user_agent"], event["request_id"],
                        json.dumps(event["extra"]), event["prev_hash"], event["hash"],
                    )
                )  # fmt: skip
                if event["seq"] % 1000 == 0:
                    created = chain.format_time(datetime.now(UTC))
                    signed = chain.checkpoint_signed_bytes(
                        seq=event["seq"], head_hash=event["hash"], created_at=created, key_id=key_id
                    )
                    checkpoints.append(
                        (event["seq"], event["hash"], created, key_id, key.sign(signed).hex())
                    )
                last = event
        with cursor.copy(
            "COPY audit_auditcheckpoint (seq, head_hash, created_at, key_id, signature) FROM STDIN"
        ) as copy:
            for row in checkpoints:
                copy.write_row(row)
    raw.commit()
    # The head jumps forward by many events at once: only the owner may do that.
    with triggers.suspended(connection), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditchainhead SET last_seq = %s, last_hash = %s, last_occurred_at = %s",
            [last["seq"], last["hash"], parse_datetime(last["occurred_at"])],
        )
    return time.perf_counter() - started


def verify_child(measure_memory: bool) -> None:
    """Run verify_audit once in this (fresh) process and print what it cost, as JSON."""
    from io import StringIO

    from django.core.management import call_command

    from audit.models import AuditChainHead

    events = AuditChainHead.objects.get(pk=1).last_seq
    if measure_memory:
        tracemalloc.start()
    out = StringIO()
    started = time.perf_counter()
    call_command("verify_audit", "--no-anchors", stdout=out)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if measure_memory else 0
    print(
        json.dumps(
            {
                "events": events,
                "seconds": elapsed,
                "rate": events / elapsed,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "tracemalloc_peak_mib": peak / 2**20,
                "summary": out.getvalue().strip(),
            }
        )
    )


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.audit_bench", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"verify child failed:\n{result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def _print_appends(args: argparse.Namespace, appends: dict[str, float]) -> None:
    print(
        f"\nappends per second ({args.appends} events per run, "
        f"median of {args.rounds} interleaved runs)"
    )
    rows = (("1", "1 writer"), (f"{args.writers}t", f"{args.writers} threads"),
            (f"{args.writers}p", f"{args.writers} processes"))  # fmt: skip
    for mode, title in (("", "standalone (one statement, autocommit)"),
                        ("-tx", "inside the caller's transaction.atomic()")):  # fmt: skip
        print(f"  {title}")
        print(
            f"    {'writers':>12} {'plain/s':>9} {'chained/s':>10} {'ratio':>6} {'vs 1 writer':>12}"
        )
        for label, name in rows:
            plain, chained = appends[f"plain{mode}_{label}"], appends[f"chained{mode}_{label}"]
            scale = chained / appends[f"chained{mode}_1"]
            print(
                f"    {name:>12} {plain:>9.0f} {chained:>10.0f} "
                f"{chained / plain:>6.2f} {scale:>11.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=4000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="medians of this many runs")
    parser.add_argument("--verify-sizes", default="100000,1000000")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--skip-appends", action="store_true", help="only the verification part")
    parser.add_argument("--verify-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.verify_child:
        _django_setup(os.environ["DATABASE_URL"], Path(os.environ["SAFECHAT_DATA_DIR"]))
        verify_child(args.memory)
        return

    source_url = os.environ.get("DATABASE_URL", "")
    if not source_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "set DATABASE_URL to a PostgreSQL URL (the bench creates <name>_auditbench)"
        )
    bench_url, bench_name, admin_url = _bench_url(source_url)
    import psycopg

    with psycopg.connect(
        admin_url.replace("postgres://", "postgresql://"), autocommit=True
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
        admin.execute(f'CREATE DATABASE "{bench_name}"')
    data_dir = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    try:
        _django_setup(bench_url, data_dir)
        from django.core.management import call_command
        from django.db import connection, connections

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            synchronous_commit = cursor.fetchone()[0]
            cursor.execute("SHOW server_version")
            server_version = cursor.fetchone()[0]
        print(f"PostgreSQL {server_version}, synchronous_commit={synchronous_commit}")

        if not args.skip_appends:
            _print_appends(
                args, bench_appends(appends=args.appends, writers=args.writers, rounds=args.rounds)
            )
        # Verification on a chain grown to each size (the append rows stay at its start).
        connections.close_all()
        env = {**os.environ, "DATABASE_URL": bench_url, "SAFECHAT_DATA_DIR": str(data_dir)}
        print("\nverify_audit (fresh process per size)")
        print(
            f"  {'events':>9} {'load s':>7} {'verify s':>8} {'events/s':>9} {'RSS MiB':>8} "
            f"{'tracemalloc MiB':>15}"
        )
        for size in (int(value) for value in args.verify_sizes.split(",")):
            loaded = bulk_load(size)
            connections.close_all()
            timing = _child(["--verify-child"], env)
            memory = _child(["--verify-child", "--memory"], env)
            if not timing["summary"].startswith("audit log intact"):
                raise SystemExit(f"verification failed: {timing['summary']}")
            print(
                f"  {timing['events']:>9} {loaded:>7.1f} {timing['seconds']:>8.1f} "
                f"{timing['rate']:>9.0f} {timing['maxrss_mib']:>8.1f} "
                f"{memory['tracemalloc_peak_mib']:>15.2f}"
            )
    finally:
        from django.db import connections as open_connections

        open_connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(
                admin_url.replace("postgres://", "postgresql://"), autocommit=True
            ) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')


if __name__ == "__main__":
    main()
