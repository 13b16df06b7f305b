"""Retention over many messages on PostgreSQL: purge rate, statement and transaction
(lock) durations, and the chat's post latency during the purge beside without it.

Usage (creates and drops its own database ``<name>_retbench``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat \\
        .venv/bin/python -m benchmarks.retention [--messages 1000000] [--rooms 1000] \\
        [--batch 500] [--batch-seconds 0.05] [--pause-ratio 2.0] \\
        [--chat-rate 20] [--chat-seconds 30] [--keep]

Seeds ``--rooms`` rooms through the real services (keys, epochs, audit), each with a
second epoch, then loads ``--messages`` messages with PostgreSQL's COPY (random
ciphertext: the purge never decrypts), spread evenly over the rooms: in each room the
first half 60 to 90 days old under its first epoch, the second half younger than 20 days
under its second, in the order of their numbers; 10% with a reaction and 5% with an
earlier text. The organisation's policy keeps 30 days, so half the messages expire and
every room's first epoch is shredded. Then:

1. chat alone: a process of its own (as a web worker would be) posts through
   ``message_post`` at ``--chat-rate`` per second for ``--chat-seconds`` (a fresh,
   encrypted, audited post each time, in rotating rooms);
2. the purge: ``retention_apply`` runs while the same poster posts again, at the same
   rate, until the purge ends;
3. chat alone again, as in 1: on a shared machine the load moves, so "alone" is both
   phases together, one before and one after the purge.

Prints messages purged per second; the distribution (p50/p90/p99/max) of every
retention transaction's duration (a transaction holds its row locks until it commits, so
its duration bounds any row lock it took), of the audit chain's lock (from the end of a
transaction's first audit append to the end of its commit: the lock every writer
shares; waiting for it is the append statement's time) and of
every SQL statement, with the statements attributed by kind (verb and table; COMMIT
included); and the posts' latency alone and during the purge, with the p99 ratio. The
aims (docs/compliance.md): no statement or transaction over 200 ms, chat p99 during the
purge at most 1.5x its p99 alone. The machine's load average is printed with each phase:
on a shared machine, read the figures beside it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.scratch import bench_urls, django_setup

BENCH_SUFFIX = "_retbench"
DAY = 86400.0


def _bench_url(url: str) -> tuple[str, str, str]:
    """(bench database URL, bench database name, maintenance URL)."""
    return bench_urls(url, BENCH_SUFFIX)


_django_setup = django_setup


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


def _ms(stats: dict[str, float]) -> str:
    return (
        f"n={int(stats['n'])} p50={stats['p50'] * 1000:.1f} ms p90={stats['p90'] * 1000:.1f} ms "
        f"p99={stats['p99'] * 1000:.1f} ms max={stats['max'] * 1000:.1f} ms"
    )


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


# --- seeding --------------------------------------------------------------------


def _rooms_seed(rooms: int) -> tuple[Any, list[Any]]:
    """The owner and ``rooms`` rooms through the services, each with a second epoch."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from accounts.models import User
    from accounts.roles import Role, roles_sync
    from rooms.services import room_create, room_key_rotate
    from safechat.keyring.models import RoomEpoch

    owner = User.objects.create_user(username="bench-owner", password=secrets.token_hex(16))
    roles_sync()  # permissions are roles' (accounts.backends)
    owner.groups.add(Group.objects.get(name=Role.ROOM_ADMIN))
    owner = User.objects.get(pk=owner.pk)
    created = []
    for number in range(rooms):
        room = room_create(actor=owner, name=f"bench room {number}")
        RoomEpoch.objects.filter(room=room).update(created_at=timezone.now() - timedelta(days=100))
        room_key_rotate(actor=owner, room=room)
        created.append(room)
    return owner, created


def _message_rows(
    *, first_id: int, room_ids: list[int], per_room: int, sender: int, now: datetime
) -> Iterator[tuple[Any, ...]]:
    """Rows of rooms_message in COPY's column order, room by room, in number order."""

    def fraction() -> float:  # spread of ages only; nothing secret
        return secrets.randbelow(1_000_000) / 1_000_000

    pk = first_id
    expired = per_room // 2
    for room_id in room_ids:
        old = sorted(now - timedelta(days=60 + 30 * fraction()) for _ in range(expired))
        young = sorted(now - timedelta(days=20 * fraction()) for _ in range(per_room - expired))
        for seq, sent in enumerate(old + young, start=1):
            yield (
                pk,
                uuid.uuid4(),
                room_id,
                sender,
                seq,
                1 if seq <= expired else 2,
                0,
                secrets.token_bytes(80),
                sent,
                "",
            )
            pk += 1


def seed(*, messages: int, rooms: int) -> tuple[Any, list[Any]]:
    """Rooms through the services, messages, reactions and earlier texts with COPY;
    returns (owner, rooms)."""
    from django.db import connection
    from django.utils import timezone

    started = time.perf_counter()
    owner, created = _rooms_seed(rooms)
    print(f"seeded {rooms} rooms (2 epochs each) in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    per_room = messages // rooms
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM rooms_message")
        first_id = int(cursor.fetchone()[0])
    reactions: list[tuple[int, int, str, datetime]] = []
    revisions: list[tuple[int, int, int, int, bytes, datetime]] = []
    connection.ensure_connection()
    raw = connection.connection  # psycopg's own (autocommit) connection: COPY
    with raw.cursor() as cursor:
        copy_sql = (
            "COPY rooms_message (id, uid, room_id, sender_id, seq, epoch, revision, "
            "ciphertext, created_at, client_fingerprint) FROM STDIN"
        )
        with cursor.copy(copy_sql) as copy:
            for row in _message_rows(
                first_id=first_id,
                room_ids=[room.pk for room in created],
                per_room=per_room,
                sender=owner.pk,
                now=now,
            ):
                copy.write_row(row)
                pk, seq, room_id, epoch, sent = row[0], row[4], row[2], row[5], row[8]
                if seq % 10 == 0:
                    reactions.append((pk, owner.pk, "👍", sent))
                if seq % 20 == 0:
                    revisions.append((pk, room_id, 0, epoch, secrets.token_bytes(80), sent))
        copy_sql = "COPY rooms_reaction (message_id, user_id, emoji, created_at) FROM STDIN"
        with cursor.copy(copy_sql) as copy:
            for reaction in reactions:
                copy.write_row(reaction)
        copy_sql = (
            "COPY rooms_messagerevision (message_id, room_id, revision, epoch, ciphertext, "
            "created_at) FROM STDIN"
        )
        with cursor.copy(copy_sql) as copy:
            for revision in revisions:
                copy.write_row(revision)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('rooms_message', 'id'), "
            "(SELECT max(id) FROM rooms_message))"
        )
        cursor.execute(
            "UPDATE rooms_room r SET message_seq = c.n FROM (SELECT room_id, max(seq) AS n "
            "FROM rooms_message GROUP BY room_id) c WHERE r.id = c.room_id"
        )
        cursor.execute(
            "UPDATE keyring_roomepoch e SET message_count = c.n FROM (SELECT room_id, epoch, "
            "count(*) AS n FROM rooms_message GROUP BY room_id, epoch) c "
            "WHERE e.room_id = c.room_id AND e.number = c.epoch"
        )
        cursor.execute("VACUUM ANALYZE")
    total = per_room * rooms
    print(
        f"seeded {total} messages ({len(reactions)} reactions, {len(revisions)} earlier "
        f"texts) with COPY in {time.perf_counter() - started:.1f} s"
    )
    return owner, created


# --- the chat's load ------------------------------------------------------------


def _poster_main(
    bench_url: str,
    data_dir: str,
    owner_id: int,
    room_ids: list[int],
    rate: float,
    seconds: float | None,
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    """Post through the service at a fixed rate, from ``go`` until ``seconds`` pass or
    ``stop`` is set; put (latencies, errors)."""
    parent = os.getppid()
    _django_setup(bench_url, Path(data_dir))
    from accounts.models import User
    from rooms.models import Room
    from rooms.services import message_post

    owner = User.objects.get(pk=owner_id)
    rooms = list(Room.objects.filter(pk__in=room_ids))
    for room in rooms:  # each room's keys opened and cached, the connection made
        message_post(sender=owner, room=room, text="warm-up")
    ready.set()
    go.wait()
    latencies: list[float] = []
    errors = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    interval = 1.0 / rate
    number = 0
    next_at = time.monotonic()
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        if os.getppid() != parent:  # the bench was killed: post no more, to nobody
            return
        room = rooms[number % len(rooms)]
        started = time.perf_counter()
        try:
            message_post(sender=owner, room=room, text=f"post {number}")
            latencies.append(time.perf_counter() - started)
        except Exception:
            errors += 1
        number += 1
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    results.put((latencies, errors))


class Poster:
    """The chat's load: a child process posting at a fixed rate."""

    def __init__(self, *, owner_id: int, room_ids: list[int], rate: float) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.ready = self.context.Event()
        self.go = self.context.Event()
        self.stop = self.context.Event()
        self.results: Any = self.context.Queue()
        self.args = (owner_id, room_ids, rate)
        self.process: Any = None
        self.latencies: list[float] = []
        self.errors = 0

    def start(self, seconds: float | None) -> None:
        """Start the process and wait until it is ready to post (its start-up is not
        measured); it posts once ``go`` is called."""
        owner_id, room_ids, rate = self.args
        self.process = self.context.Process(
            daemon=True,  # ended with the bench, however it ends
            target=_poster_main,
            args=(
                os.environ["DATABASE_URL"],
                os.environ["SAFECHAT_DATA_DIR"],
                owner_id,
                room_ids,
                rate,
                seconds,
                self.ready,
                self.go,
                self.stop,
                self.results,
            ),
        )
        self.process.start()
        if not self.ready.wait(timeout=300):
            raise RuntimeError("the poster did not start")

    def begin(self) -> None:
        self.go.set()

    def finish(self, *, stop: bool = True) -> None:
        if stop:
            self.stop.set()
        self.latencies, self.errors = self.results.get(timeout=3600)
        self.process.join(timeout=60)


# --- timing the purge -----------------------------------------------------------

_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def statement_kind(sql: str) -> str:
    """A statement's kind for attribution: its verb and first table, and the locking
    clause or function that matters (``SELECT rooms_message FOR UPDATE``)."""
    text = " ".join(sql.split())
    verb = text.split(" ", 1)[0].upper()
    advisory = re.search(r"pg_\w*advisory\w*", text)
    if advisory:
        return f"{verb} {advisory.group(0)}"
    if verb == "SET":
        return " ".join(text.split(" ")[:3]).upper()
    table = _TABLE.search(text)
    kind = f"{verb} {table.group(1) if table else '?'}"
    if "FOR UPDATE" in text:
        kind += " FOR UPDATE"
    elif "FOR NO KEY UPDATE" in text:
        kind += " FOR NO KEY UPDATE"
    elif verb == "SELECT" and "LIMIT 1" in text and "SELECT 1 AS" in text:
        kind += " (exists)"
    return kind


@dataclass
class Timings:
    statements: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    transactions: list[float] = field(default_factory=list)
    audit_lock: list[float] = field(default_factory=list)
    audit_started: float | None = None


@contextmanager
def timed_purge(timings: Timings) -> Iterator[None]:
    """Time every statement of this connection, every transaction the retention service
    opens (BEGIN to the end of COMMIT) and how long each holds the audit chain's lock."""
    from django.db import connection

    from compliance.services import retention as module
    from rooms.services import epochs as epochs_module

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            timings.statements.append(elapsed)
            timings.by_kind[statement_kind(sql)].append(elapsed)

    original_transaction = vars(module)["action_transaction"]

    @contextmanager
    def timed_transaction() -> Iterator[None]:
        started = time.perf_counter()
        timings.audit_started = None
        try:
            with original_transaction():
                yield
        finally:
            ended = time.perf_counter()
            timings.transactions.append(ended - started)
            if timings.audit_started is not None:
                timings.audit_lock.append(ended - timings.audit_started)

    def audit_timer(original: Callable[..., Any]) -> Callable[..., Any]:
        def record(**kwargs: Any) -> Any:
            try:
                return original(**kwargs)
            finally:  # the chain's lock is held from the first append on
                if timings.audit_started is None:
                    timings.audit_started = time.perf_counter()

        return record

    original_commit = connection.commit

    def commit() -> None:
        started = time.perf_counter()
        try:
            original_commit()
        finally:
            elapsed = time.perf_counter() - started
            timings.statements.append(elapsed)
            timings.by_kind["COMMIT"].append(elapsed)

    originals = {
        (module, "action_transaction"): original_transaction,
        (module, "audit_record"): vars(module)["audit_record"],
        (epochs_module, "audit_record"): vars(epochs_module)["audit_record"],
    }
    setattr(module, "action_transaction", timed_transaction)  # noqa: B010
    setattr(module, "audit_record", audit_timer(vars(module)["audit_record"]))  # noqa: B010
    setattr(epochs_module, "audit_record", audit_timer(vars(epochs_module)["audit_record"]))  # noqa: B010
    connection.commit = commit  # type: ignore[method-assign]
    try:
        with connection.execute_wrapper(wrapper):
            yield
    finally:
        for (owner, name), value in originals.items():
            setattr(owner, name, value)
        del connection.commit


# --- the benchmark --------------------------------------------------------------


def bench(
    *,
    messages: int,
    rooms: int,
    batch: int,
    batch_seconds: float,
    pause_ratio: float,
    chat_rate: float,
    chat_seconds: float,
) -> None:
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.db import connections

    from accounts.models import User
    from accounts.roles import Role
    from audit.models import AuditEvent
    from compliance.models import MessageTombstone
    from compliance.selectors import tombstones_verify
    from compliance.services import retention_apply, retention_policy_set
    from rooms.models import Message

    print(_load())
    owner, created = seed(messages=messages, rooms=rooms)
    officer = User.objects.create_user(username="bench-officer", is_staff=True)
    officer.groups.add(Group.objects.get(name=Role.COMPLIANCE_OFFICER))
    officer = User.objects.get(pk=officer.pk)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    settings.SAFECHAT_RETENTION_BATCH_SECONDS = batch_seconds
    settings.SAFECHAT_RETENTION_PAUSE_RATIO = pause_ratio
    chat_rooms = created[:: max(1, len(created) // 50)]
    room_ids = [room.pk for room in chat_rooms]
    expired = messages // rooms // 2 * rooms
    connections.close_all()

    alone = Poster(owner_id=owner.pk, room_ids=room_ids, rate=chat_rate)
    alone.start(chat_seconds)
    print(f"chat alone: {chat_seconds:.0f} s at {chat_rate:g} posts/s; {_load()}")
    alone.begin()
    alone.finish(stop=False)

    during = Poster(owner_id=owner.pk, room_ids=room_ids, rate=chat_rate)
    during.start(None)
    timings = Timings()
    print(f"purge (batch up to {batch}, {batch_seconds * 1000:g} ms aimed, rest ratio "
          f"{pause_ratio:g}); {_load()}")  # fmt: skip
    during.begin()
    started = time.perf_counter()
    try:
        with timed_purge(timings):
            report = retention_apply(batch_size=batch)
    finally:
        elapsed = time.perf_counter() - started
        during.finish()
    print(f"purge ended; {_load()}")
    after = Poster(owner_id=owner.pk, room_ids=room_ids, rate=chat_rate)
    after.start(chat_seconds)
    print(f"chat alone again: {chat_seconds:.0f} s; {_load()}")
    after.begin()
    after.finish(stop=False)
    totals = report.totals()
    assert totals["messages"] == expired, (totals, expired)
    assert MessageTombstone.objects.count() == expired
    assert totals["epochs"] == rooms, totals
    problems = tombstones_verify(run_id=report.run_id)
    left = Message.objects.count()

    print()
    print(f"purged {totals['messages']} messages ({totals['reactions']} reactions, "
          f"{totals['revisions']} earlier texts) and shredded {totals['epochs']} epochs "
          f"in {elapsed:.1f} s: {totals['messages'] / elapsed:.0f} messages/s; "
          f"{left} messages left; tombstones verified: "
          f"{'yes' if not problems else problems[:3]}")  # fmt: skip
    print(f"transactions:     {_ms(_quantiles(timings.transactions))}")
    print(f"audit chain lock: {_ms(_quantiles(timings.audit_lock))}")
    print(f"statements:       {_ms(_quantiles(timings.statements))}")
    sizes = [
        float(extra["messages"])
        for extra in AuditEvent.objects.filter(action="retention.purged").values_list(
            "extra", flat=True
        )
        if extra and extra.get("messages")
    ]
    size_stats = _quantiles(sizes)
    print(f"batches: {len(sizes)} purging messages; messages per batch: "
          f"p50 {size_stats['p50']:.0f} p90 {size_stats['p90']:.0f} "
          f"max {size_stats['max']:.0f}")  # fmt: skip
    over_tx = len([d for d in timings.transactions if d > 0.2])
    over_st = len([d for d in timings.statements if d > 0.2])
    print(f"over 200 ms: {over_tx} transactions, {over_st} statements")
    print("statements by kind (slowest first): n, total s, p99 ms, max ms")
    kinds = sorted(timings.by_kind.items(), key=lambda item: -max(item[1]))
    for kind, values in kinds[:14]:
        stats = _quantiles(values)
        print(f"  {kind:<52} {len(values):>7} {sum(values):>7.1f} "
              f"{stats['p99'] * 1000:>7.1f} {stats['max'] * 1000:>7.1f}")  # fmt: skip
    quiet = _quantiles(alone.latencies + after.latencies)
    busy = _quantiles(during.latencies)
    print(f"chat alone before: {_ms(_quantiles(alone.latencies))} (errors {alone.errors})")
    print(f"chat alone after:  {_ms(_quantiles(after.latencies))} (errors {after.errors})")
    print(f"chat alone (both): {_ms(quiet)}")
    print(f"chat during purge: {_ms(busy)} (errors {during.errors})")
    if quiet["p99"]:
        print(f"chat p99 during/alone: {busy['p99'] / quiet['p99']:.2f}x (aim <= 1.5x)")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500, help="most messages per batch")
    parser.add_argument("--batch-seconds", type=float, default=0.05, help="a batch's aim")
    parser.add_argument("--pause-ratio", type=float, default=2.0, help="rest after a batch")
    parser.add_argument("--chat-rate", type=float, default=20.0)
    parser.add_argument("--chat-seconds", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    # A TERM (a timeout, an operator) unwinds like an error: the poster is stopped and the
    # scratch database dropped by the ``finally`` below.
    signal.signal(signal.SIGTERM, _terminated)

    source_url = os.environ.get("DATABASE_URL", "")
    if not source_url.startswith(("postgres://", "postgresql://")):
        print("set DATABASE_URL to a PostgreSQL URL (the bench creates <name>_retbench)")
        return 2
    bench_url, bench_name, admin_url = _bench_url(source_url)
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
        admin.execute(f'CREATE DATABASE "{bench_name}"')
    data_dir = Path(tempfile.mkdtemp(prefix="retbench-"))
    try:
        _django_setup(bench_url, data_dir)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        bench(
            messages=args.messages,
            rooms=args.rooms,
            batch=args.batch,
            batch_seconds=args.batch_seconds,
            pause_ratio=args.pause_ratio,
            chat_rate=args.chat_rate,
            chat_seconds=args.chat_seconds,
        )
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(data_dir, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
