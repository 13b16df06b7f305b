"""WebSocket load: SafeChat beside a plain chat and a plain persisted chat, same server, same run.

Usage (PostgreSQL and Redis, as the figures in docs/realtime.md were taken):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python -m benchmarks.ws_load [--rate 100] [--seconds 20] [--clients 200] \\
            [--rooms 20] [--warmup 3] [--conn-max-age 0]

Creates its own scratch database (``test_<name>`` from DATABASE_URL, dropped at the end),
migrates it, adds the baselines' plaintext table there only, and creates ``--clients``
users with verified sessions in ``--rooms`` rooms of equal size through the real
services. Starts uvicorn (``--loop asyncio``, ``--workers`` processes, SafeChat's
WebSocket options, channels-redis layer) serving ``benchmarks.baseline_asgi``, then
for each system in turn connects every client and
posts at a fixed total rate, round-robin over rooms and members; every member of the
room (the poster too) should receive each post. Each text carries its sequence number,
so the receiver (which, for SafeChat, gets it decrypted) computes send-to-receive
latency. Prints posts/s, deliveries/s, p50 and p99 latency for

  plain      the Channels-tutorial chat: no auth checks, no persistence, no encryption
  persisted  the same, storing each message as a plaintext row in the same database
  safechat   rooms.consumers: permission checks, encryption, audit, rate limit,
             ciphertext over the layer, decrypted with each recipient's own key

and SafeChat's ratios to the persisted chat (aim: throughput >= 0.8x, p99 <= 1.25x).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from safechat.events import Event, Frame
from safechat.supervise import UVICORN_WEBSOCKET_OPTIONS
from tests.support.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
TEXT_LENGTH = 120
CONNECT_BATCH = 20
DRAIN_SECONDS = 20.0


# --- the three systems, as a client sees them ----------------------------------------------
@dataclass(frozen=True)
class System:
    name: str
    path: Callable[[int], str]
    post: Callable[[int, str], str]
    # The delivered text of a frame, or None for frames that are not a delivery.
    delivered: Callable[[dict[str, Any]], str | None]
    needs_ping: bool


def _safechat_delivered(frame: dict[str, Any]) -> str | None:
    if frame.get("type") != Event.MESSAGE_NEW:
        return None
    text: str | None = frame["message"]["text"]
    return text


def _baseline_delivered(frame: dict[str, Any]) -> str | None:
    return str(frame["text"]) if frame.get("type") == "message" else None


SYSTEMS = {
    "plain": System(
        name="plain",
        path=lambda room_id: f"/plain/{room_id}/",
        post=lambda room_id, text: json.dumps({"text": text}),
        delivered=_baseline_delivered,
        needs_ping=False,
    ),
    "persisted": System(
        name="persisted",
        path=lambda room_id: f"/persisted/{room_id}/",
        post=lambda room_id, text: json.dumps({"text": text}),
        delivered=_baseline_delivered,
        needs_ping=False,
    ),
    "safechat": System(
        name="safechat",
        path=lambda room_id: "/ws/",
        post=lambda room_id, text: json.dumps(
            {"type": Frame.MESSAGE_POST, "room_id": room_id, "text": text}
        ),
        delivered=_safechat_delivered,
        needs_ping=True,
    ),
}


def message_text(seq: int) -> str:
    head = f"m{seq:09d} "
    return head + "x" * (TEXT_LENGTH - len(head))


def message_seq(text: str) -> int:
    return int(text[1:10])


# --- measurement ---------------------------------------------------------------------------
@dataclass
class Tally:
    """What the clients saw; only sequence numbers from ``measured_from`` on are counted."""

    measured_from: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    deliveries: int = 0
    warmup_deliveries: int = 0
    errors: int = 0
    last_delivery: float = 0.0
    # Set once this many deliveries (warm-up, measured) arrived.
    warmup_expected: int = 0
    expected: int = 0
    warmup_done: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered(self, seq: int, now: float) -> None:
        sent = self.sent_at.get(seq)
        if sent is None:
            return
        if seq < self.measured_from:
            self.warmup_deliveries += 1
            if self.warmup_deliveries >= self.warmup_expected:
                self.warmup_done.set()
            return
        self.deliveries += 1
        self.latencies.append(now - sent)
        self.last_delivery = now
        if self.deliveries >= self.expected:
            self.done.set()


@dataclass
class Client:
    room_id: int
    socket: ClientConnection
    ready: asyncio.Event
    reader: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Result:
    name: str
    posted_per_s: float
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    expected: int
    delivered: int
    errors: int


async def read_frames(client: Client, system: System, tally: Tally) -> None:
    with contextlib.suppress(Exception):
        async for raw in client.socket:
            now = time.perf_counter()
            frame = json.loads(raw)
            text = system.delivered(frame)
            if text is not None:
                tally.delivered(message_seq(text), now)
            elif frame.get("type") == Event.PONG:
                client.ready.set()
            elif frame.get("type") == Event.ERROR:
                tally.errors += 1


async def open_client(
    port: int, system: System, room_id: int, cookie: str, cookie_name: str, tally: Tally
) -> Client:
    sock = await connect(
        f"ws://127.0.0.1:{port}{system.path(room_id)}",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": f"{cookie_name}={cookie}"},
        open_timeout=60,
        max_queue=None,
    )
    client = Client(room_id=room_id, socket=sock, ready=asyncio.Event())
    client.reader = asyncio.create_task(read_frames(client, system, tally))
    if system.needs_ping:
        # SafeChat subscribes to the rooms after accepting; the pong comes after that.
        await sock.send(json.dumps({"type": Frame.PING}))
        await asyncio.wait_for(client.ready.wait(), timeout=60)
    return client


async def post_at_rate(
    clients: list[Client], system: System, tally: Tally, *, first_seq: int, rate: float, count: int
) -> float:
    """Post ``count`` messages at ``rate`` per second (open loop); returns the seconds taken.

    Message k goes to room k mod R, from the next member of that room in turn, so every
    room sees an even stream and every client posts.
    """
    rooms: dict[int, list[Client]] = {}
    for client in clients:
        rooms.setdefault(client.room_id, []).append(client)
    room_ids = sorted(rooms)
    start = time.perf_counter()
    for k in range(count):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        room_id = room_ids[k % len(room_ids)]
        members = rooms[room_id]
        poster = members[(k // len(room_ids)) % len(members)]
        seq = first_seq + k
        tally.sent_at[seq] = time.perf_counter()
        await poster.socket.send(system.post(room_id, message_text(seq)))
    return time.perf_counter() - start


async def settle(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event``, or give up after ``seconds`` (what is missing counts as lost)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def measure(
    system: System,
    *,
    port: int,
    members: list[tuple[int, str]],
    cookie_name: str,
    room_size: int,
    rate: float,
    seconds: float,
    warmup: float,
) -> Result:
    tally = Tally()
    clients: list[Client] = []
    try:
        for i in range(0, len(members), CONNECT_BATCH):
            batch = members[i : i + CONNECT_BATCH]
            clients += await asyncio.gather(
                *(
                    open_client(port, system, room_id, cookie, cookie_name, tally)
                    for room_id, cookie in batch
                )
            )
        await asyncio.sleep(1.0)  # let the presence announcements of the connects pass

        warmup_count = int(rate * warmup)
        count = int(rate * seconds)
        tally.measured_from = warmup_count
        tally.warmup_expected = warmup_count * room_size
        tally.expected = count * room_size
        if warmup_count:
            await post_at_rate(clients, system, tally, first_seq=0, rate=rate, count=warmup_count)
            await settle(tally.warmup_done, DRAIN_SECONDS)

        first_send = time.perf_counter()
        elapsed = await post_at_rate(
            clients, system, tally, first_seq=warmup_count, rate=rate, count=count
        )
        await settle(tally.done, DRAIN_SECONDS)
    finally:
        for client in clients:
            await client.socket.close()
            if client.reader is not None:
                await client.reader
    window = max(tally.last_delivery - first_send, elapsed)
    quantiles = statistics.quantiles(tally.latencies, n=100) if len(tally.latencies) > 1 else []
    return Result(
        name=system.name,
        posted_per_s=count / elapsed,
        deliveries_per_s=tally.deliveries / window,
        p50_ms=quantiles[49] * 1000 if quantiles else float("nan"),
        p99_ms=quantiles[98] * 1000 if quantiles else float("nan"),
        expected=tally.expected,
        delivered=tally.deliveries,
        errors=tally.errors,
    )


# --- the scratch database, its users and rooms ---------------------------------------------
def scratch_database(prefix: str) -> str:
    """Set up Django on a scratch data folder and a fresh ``test_<name>`` PostgreSQL
    database (from DATABASE_URL); returns the original name, for ``destroy_test_db``."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["SAFECHAT_DATA_DIR"] = str(workdir)
    os.environ["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    os.environ["DJANGO_SETTINGS_MODULE"] = "safechat.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.db import connection

    old_name: str = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    return old_name


def database_url(settings_dict: dict[str, Any]) -> str:
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict["PASSWORD"]:
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = f"{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{quote(settings_dict['NAME'], safe='')}"


def populate(client_count: int, room_count: int) -> tuple[list[tuple[int, str]], str]:
    """Users with verified sessions, in rooms made by the real services.

    Returns (room id, session cookie) per client, and the session cookie's name.
    """
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from benchmarks.baseline_app.models import PlainMessage
    from tests.accounts.factories import make_user
    from tests.rooms.factories import make_room
    from tests.support.fixtures import session_cookie_for

    with connection.schema_editor() as editor:
        editor.create_model(PlainMessage)
    # The password is never used; production Argon2 would only slow the setup down.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        users = [make_user(username=f"bench{i:04d}") for i in range(client_count)]
    room_size = client_count // room_count
    members: list[tuple[int, str]] = []
    for r in range(room_count):
        people = users[r * room_size : (r + 1) * room_size]
        room = make_room(owner=people[0], members=tuple(people[1:]), name=f"Load {r}")
        for user in people:
            members.append((room.pk, session_cookie_for(user, verified=True)))
    return members, settings.SESSION_COOKIE_NAME


# --- the server ----------------------------------------------------------------------------
def start_server(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.baseline_asgi:application",
         "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio",
         "--log-level", "warning", "--workers", str(workers), *UVICORN_WEBSOCKET_OPTIONS],
        cwd=ROOT, env=env,
        start_new_session=True,  # its own process group: stopping it stops every worker
    )  # fmt: skip
    return wait_until_healthy(process, port, seconds=60)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop uvicorn and its worker processes, which would otherwise outlive it and load the
    machine under the next measurement."""
    os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# --- report --------------------------------------------------------------------------------
def report(results: dict[str, Result], *, clients: int, rooms: int, rate: float) -> None:
    print(
        f"\n{clients} clients in {rooms} rooms of {clients // rooms}, {rate:g} posts/s in total"
        " (each delivered to every member)"
    )
    print(
        f"{'':10s} {'posted/s':>9s} {'deliveries/s':>13s} {'p50 ms':>8s} {'p99 ms':>8s}"
        f" {'delivered':>16s} {'errors':>7s}"
    )
    for r in results.values():
        print(
            f"{r.name:10s} {r.posted_per_s:9.1f} {r.deliveries_per_s:13.1f} {r.p50_ms:8.2f}"
            f" {r.p99_ms:8.2f} {r.delivered:>7d}/{r.expected:<8d} {r.errors:7d}"
        )
    if "safechat" in results and "persisted" in results:
        ours, base = results["safechat"], results["persisted"]
        throughput = ours.deliveries_per_s / base.deliveries_per_s
        tail = ours.p99_ms / base.p99_ms
        print(
            f"safechat / persisted: throughput {throughput:.2f}x (aim >= 0.8x, "
            f"{'met' if throughput >= 0.8 else 'missed'}), p99 {tail:.2f}x (aim <= 1.25x, "
            f"{'met' if tail <= 1.25 else 'missed'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=100.0, help="posts per second, in total")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured posting time")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured posting first")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument(
        "--systems", default="plain,persisted,safechat", help="comma-separated, in run order"
    )
    parser.add_argument(
        "--conn-max-age",
        default=os.environ.get("DATABASE_CONN_MAX_AGE", "0"),
        help="the server's DATABASE_CONN_MAX_AGE (default: the product default, 0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, the same for all three systems (they share Redis)",
    )
    args = parser.parse_args()
    systems = [SYSTEMS[name] for name in args.systems.split(",")]
    source_url = os.environ.get("DATABASE_URL", "")
    if not source_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("set DATABASE_URL to a PostgreSQL URL (the benchmark creates test_<name>)")
    if args.clients % args.rooms:
        raise SystemExit("--clients must be a multiple of --rooms")

    old_name = scratch_database("safechat-ws-load-")
    from django.db import connection

    server = None
    try:
        started = time.perf_counter()
        members, cookie_name = populate(args.clients, args.rooms)
        setup_seconds = time.perf_counter() - started
        print(f"set up {args.clients} users in {args.rooms} rooms in {setup_seconds:.1f} s")
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url(connection.settings_dict),
            "DATABASE_CONN_MAX_AGE": str(args.conn_max_age),
            "SAFECHAT_POST_RATE_LIMIT": "1000000/1",
            "SAFECHAT_WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        }
        connection.close()
        server = start_server(env, port, args.workers)
        results: dict[str, Result] = {}
        for system in systems:
            results[system.name] = asyncio.run(
                measure(
                    system,
                    port=port,
                    members=members,
                    cookie_name=cookie_name,
                    room_size=args.clients // args.rooms,
                    rate=args.rate,
                    seconds=args.seconds,
                    warmup=args.warmup,
                )
            )
            r = results[system.name]
            print(f"  {system.name}: {r.delivered}/{r.expected} delivered, p99 {r.p99_ms:.1f} ms")
        report(results, clients=args.clients, rooms=args.rooms, rate=args.rate)
        print(
            f"server: uvicorn --loop asyncio --workers {args.workers}, "
            f"DATABASE_CONN_MAX_AGE={args.conn_max_age}"
        )
    finally:
        if server is not None:
            stop_server(server)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
