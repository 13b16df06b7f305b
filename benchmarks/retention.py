"""Retention over many messages on PostgreSQL: purge rate, statement and transaction
(lock) durations, and the chat's post latency during the purge beside without it.

Usage (creates and drops its own database ``<name>_retbench``)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat \\
        .venv/bin/python -m benchmarks.retention [--messages 1000000] [--rooms 1000] \\
        [--batch 200] [--chat-rate 20] [--chat-seconds 10] [--keep]

Seeds ``--rooms`` rooms through the real services (keys, epochs, audit), each with a
second epoch, then bulk-loads ``--messages`` messages (random ciphertext: the purge never
decrypts), half of them 60 to 90 days old under the room's first epoch and half younger
under its second, 10% with a reaction and 5% with an earlier text. The organisation's
policy keeps 30 days. Then:

1. chat alone: one thread posts through ``message_post`` at ``--chat-rate`` per second
   for ``--chat-seconds`` (a fresh, encrypted, audited post each time, in rotating rooms);
2. the purge: ``retention_apply`` runs while the same poster posts again, at the same rate,
   until the purge ends.

Prints messages purged per second; the distribution (p50/p90/p99/max) of every SQL
statement's duration and of every retention transaction's duration (a transaction holds
its row locks until it commits, so its duration bounds any lock it took); and the posts'
p50/p99 latency alone and during the purge, with their ratio. The aims (docs/compliance.md):
no statement or transaction over 200 ms, chat p99 during the purge at most 1.5x.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_SUFFIX = "_retbench"
DAY = 86400.0


def _bench_url(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + BENCH_SUFFIX
    return (
        urlunsplit(parts._replace(path=f"/{name}")),
        name,
        urlunsplit(parts._replace(path="/postgres")),
    )


def _django_setup(database_url: str, data_dir: Path) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ["SAFECHAT_DATA_DIR"] = str(data_dir)
    os.environ["SAFECHAT_AUDIT_SIGNING_KEY"] = base64.b64encode(b"\x42" * 32).decode()
    os.environ["SAFECHAT_AUDIT_ANCHOR_FILE"] = str(data_dir / "anchors.jsonl")
    os.environ["SAFECHAT_AUDIT_CHECKPOINT_EVERY"] = "0"
    os.environ["SAFECHAT_POST_RATE_LIMIT"] = "1000000/10"
    os.environ["SAFECHAT_ROOM_CREATE_RATE_LIMIT"] = "1000000/600"
    os.environ["SAFECHAT_ROOM_SETTINGS_RATE_LIMIT"] = "1000000/600"
    os.environ["SAFECHAT_RETENTION_MINIMUM_DAYS"] = "1"
    os.environ["SAFECHAT_BACKUP_RETENTION_DAYS"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
    import django

    django.setup()


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


# --- seeding --------------------------------------------------------------------


def seed(*, messages: int, rooms: int) -> tuple[Any, list[Any]]:
    """Rooms through the services, messages in bulk; returns (owner, rooms)."""
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import User
    from accounts.roles import Role, roles_sync
    from rooms.models import Message, MessageRevision, Reaction, Room
    from rooms.services import room_create, room_key_rotate
    from safechat.keyring.models import RoomEpoch

    owner = User.objects.create_user(username="bench-owner", password=secrets.token_hex(16))
    roles_sync()  # permissions are roles' (accounts.backends)
    owner.groups.add(Group.objects.get(name=Role.ROOM_ADMIN))
    owner = User.objects.get(pk=owner.pk)
    started = time.perf_counter()
    created = []
    for number in range(rooms):
        room = room_create(actor=owner, name=f"bench room {number}")
        RoomEpoch.objects.filter(room=room).update(created_at=timezone.now() - timedelta(days=100))
        room_key_rotate(actor=owner, room=room)
        created.append(room)
    print(f"seeded {rooms} rooms (2 epochs each) in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    per_room = messages // rooms
    chunk: list[Message] = []

    def flush() -> None:
        with transaction.atomic():
            made = Message.objects.bulk_create(chunk)
            reactions = [
                Reaction(message=m, user=owner, emoji="👍") for m in made if m.seq % 10 == 0
            ]
            Reaction.objects.bulk_create(reactions)
            revisions = [
                MessageRevision(
                    message=m, room_id=m.room_id, revision=0, epoch=m.epoch,
                    ciphertext=m.ciphertext,
                    created_at=m.created_at,
                )
                for m in made
                if m.seq % 20 == 0
            ]  # fmt: skip
            MessageRevision.objects.bulk_create(revisions)
        chunk.clear()

    for room in created:
        for seq in range(1, per_room + 1):
            expired = seq <= per_room // 2
            chunk.append(
                Message(
                    room=room,
                    sender=owner,
                    seq=seq,
                    epoch=1 if expired else 2,
                    ciphertext=secrets.token_bytes(80),
                )
            )
            if len(chunk) >= 5000:
                flush()
        if chunk:
            flush()
        Room.objects.filter(pk=room.pk).update(message_seq=per_room)
        RoomEpoch.objects.filter(room=room, number=1).update(message_count=per_room // 2)
        RoomEpoch.objects.filter(room=room, number=2).update(message_count=per_room - per_room // 2)
    with connection.cursor() as cursor:
        # created_at is auto_now_add (bulk_create overrides it): date the rows afterwards.
        cursor.execute(
            "UPDATE rooms_message SET created_at = now() - interval '60 days' "
            "- random() * interval '30 days' WHERE epoch = 1"
        )
        cursor.execute(
            "UPDATE rooms_message SET created_at = now() - random() * interval '20 days' "
            "WHERE epoch = 2"
        )
        cursor.execute("UPDATE rooms_messagerevision r SET created_at = m.created_at "
                       "FROM rooms_message m WHERE r.message_id = m.id")  # fmt: skip
        cursor.execute("ANALYZE")
    total = per_room * rooms
    print(f"seeded {total} messages in {time.perf_counter() - started:.1f} s")
    return owner, created


# --- measuring -------------------------------------------------------------------


def _poster_main(
    bench_url: str,
    data_dir: str,
    owner_id: int,
    room_ids: list[int],
    rate: float,
    seconds: float | None,
    stop: Any,
    results: Any,
) -> None:
    """In a process of its own (as a web worker would be): post through the service at a
    fixed rate until ``seconds`` pass or ``stop`` is set; put (latencies, errors)."""
    _django_setup(bench_url, Path(data_dir))
    from accounts.models import User
    from rooms.models import Room
    from rooms.services import message_post

    owner = User.objects.get(pk=owner_id)
    rooms = list(Room.objects.filter(pk__in=room_ids))
    latencies: list[float] = []
    errors = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    interval = 1.0 / rate
    number = 0
    next_at = time.monotonic()
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
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
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.results: Any = context.Queue()
        self.context = context
        self.args = (owner_id, room_ids, rate)
        self.process: Any = None
        self.latencies: list[float] = []
        self.errors = 0

    def start(self, seconds: float | None) -> None:
        owner_id, room_ids, rate = self.args
        self.process = self.context.Process(
            target=_poster_main,
            args=(
                os.environ["DATABASE_URL"],
                os.environ["SAFECHAT_DATA_DIR"],
                owner_id,
                room_ids,
                rate,
                seconds,
                self.stop,
                self.results,
            ),
        )
        self.process.start()

    def finish(self, *, stop: bool = True) -> None:
        if stop:
            self.stop.set()
        self.latencies, self.errors = self.results.get(timeout=600)
        self.process.join(timeout=60)


@contextmanager
def statement_timer(durations: list[float]) -> Iterator[None]:
    from django.db import connection

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append(time.perf_counter() - started)

    with connection.execute_wrapper(wrapper):
        yield


@contextmanager
def transaction_timer(durations: list[float]) -> Iterator[None]:
    """Time every transaction the retention service opens (from BEGIN to COMMIT)."""
    from compliance.services import retention as module

    namespace = vars(module)
    original = namespace["action_transaction"]

    @contextmanager
    def timed() -> Iterator[None]:
        started = time.perf_counter()
        try:
            with original():
                yield
        finally:
            durations.append(time.perf_counter() - started)

    namespace["action_transaction"] = timed
    try:
        yield
    finally:
        namespace["action_transaction"] = original


def bench(*, messages: int, rooms: int, batch: int, chat_rate: float, chat_seconds: float) -> None:
    from accounts.models import User
    from compliance.models import MessageTombstone
    from compliance.services import retention_apply, retention_policy_set
    from rooms.models import Message

    owner, created = seed(messages=messages, rooms=rooms)
    officer = User.objects.create_user(username="bench-officer", is_staff=True)
    from django.contrib.auth.models import Group

    from accounts.roles import Role

    officer.groups.add(Group.objects.get(name=Role.COMPLIANCE_OFFICER))
    officer = User.objects.get(pk=officer.pk)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    chat_rooms = created[:: max(1, len(created) // 50)]

    room_ids = [room.pk for room in chat_rooms]
    from django.db import connections

    connections.close_all()
    alone = Poster(owner_id=owner.pk, room_ids=room_ids, rate=chat_rate)
    alone.start(chat_seconds)
    alone.finish(stop=False)

    during = Poster(owner_id=owner.pk, room_ids=room_ids, rate=chat_rate)
    statements: list[float] = []
    transactions: list[float] = []
    expired_before = messages // rooms // 2 * rooms
    during.start(None)
    time.sleep(3)  # the child's start-up (Django, keys) is not part of the purge
    started = time.perf_counter()
    try:
        with statement_timer(statements), transaction_timer(transactions):
            report = retention_apply(batch_size=batch)
    finally:
        elapsed = time.perf_counter() - started
        during.finish()
    totals = report.totals()
    assert totals["messages"] == expired_before, (totals, expired_before)
    assert MessageTombstone.objects.count() == expired_before
    left = Message.objects.count()

    print()
    print(f"purged {totals['messages']} messages ({totals['reactions']} reactions, "
          f"{totals['revisions']} earlier texts) and shredded {totals['epochs']} epochs "
          f"in {elapsed:.1f} s: {totals['messages'] / elapsed:.0f} messages/s "
          f"(batch {batch}); {left} messages left")  # fmt: skip
    print(f"statements:   {_ms(_quantiles(statements))}")
    print(f"transactions: {_ms(_quantiles(transactions))}")
    over = [d for d in transactions if d > 0.2]
    print(f"transactions over 200 ms: {len(over)}; statements over 200 ms: "
          f"{len([d for d in statements if d > 0.2])}")  # fmt: skip
    quiet, busy = _quantiles(alone.latencies), _quantiles(during.latencies)
    print(f"chat alone:        {_ms(quiet)} (errors {alone.errors})")
    print(f"chat during purge: {_ms(busy)} (errors {during.errors})")
    if quiet["p99"]:
        print(f"p99 ratio during/alone: {busy['p99'] / quiet['p99']:.2f}x (aim <= 1.5x)")
    if quiet["n"] > 1 and busy["n"] > 1:
        print(f"chat mean alone {statistics.mean(alone.latencies) * 1000:.1f} ms, "
              f"during {statistics.mean(during.latencies) * 1000:.1f} ms")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--chat-rate", type=float, default=20.0)
    parser.add_argument("--chat-seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)

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
