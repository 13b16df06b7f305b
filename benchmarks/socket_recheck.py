"""What re-deriving every socket's right to live costs the realtime hot path.

Usage (PostgreSQL and Redis):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/safechat_bench \\
    REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python -m benchmarks.socket_recheck [--clients 1000] [--rooms 100] \\
            [--rate 50] [--seconds 20] [--rounds 2] [--baseline-tree PATH]

Measures SafeChat's socket (``benchmarks.ws_load``'s client, same users, same rooms, same
database, same Redis) under two servers, alternately (A B B A ... so that drift on a
shared machine falls on both alike), and prints each run, the median of each and its
spread (min-max), and the after/before ratios:

  before   with ``--baseline-tree``: SafeChat as checked out in PATH (for example a git
           worktree of the commit before the re-checks), served from there; without it,
           this tree with the re-checks switched off (a verdict that never ages, a socket
           watch that never wakes), which isolates their cost
  after    this tree, as configured by default: a verdict read before a frame once
           1.5 s old, every socket's session re-read every 10 s in one query per
           event loop, the idle clock moved by a person's frames

The aim (docs/realtime.md): p99 no more than 10% above before, deliveries/s unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.ws_load import (
    ROOT,
    SYSTEMS,
    Result,
    database_url,
    measure,
    populate,
    scratch_database,
    stop_server,
)
from safechat.supervise import UVICORN_WEBSOCKET_OPTIONS
from tests.support.servers import free_port, wait_until_healthy

RECHECKS_OFF = {
    "SAFECHAT_SOCKET_VERDICT_SECONDS": "1e9",
    "SAFECHAT_SOCKET_RECHECK_SECONDS": "1e9",
}


def start_server(env: dict[str, str], port: int, tree: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.baseline_asgi:application",
         "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio",
         "--log-level", "warning", *UVICORN_WEBSOCKET_OPTIONS],
        cwd=tree, env={**env, "PYTHONPATH": str(tree)},
        start_new_session=True,
    )  # fmt: skip
    return wait_until_healthy(process, port, seconds=60)


def _legacy_session_clocks() -> None:
    """Trees before the session policy moved to the session row kept its clocks in the
    session itself; give every session those too, far in the future, so such a tree
    accepts them (development data only: it is dropped at the end)."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    later = time.time() + 86400
    for row in Session.objects.all():
        store = SessionStore(session_key=row.session_key)
        store["safechat.auth_at"] = store["safechat.seen_at"] = later
        store.save()


def summary(name: str, runs: list[Result]) -> str:
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"

    return (
        f"{name:7s} deliveries/s {spread([r.deliveries_per_s for r in runs])}"
        f"  p50 ms {spread([r.p50_ms for r in runs])}"
        f"  p99 ms {spread([r.p99_ms for r in runs])}"
        f"  delivered {sum(r.delivered for r in runs)}/{sum(r.expected for r in runs)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=50.0, help="posts per second, in total")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured posting time")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--conn-max-age", default="60", help="the server's DATABASE_CONN_MAX_AGE")
    parser.add_argument(
        "--baseline-tree", type=Path, default=None, help="a SafeChat checkout to serve 'before'"
    )
    parser.add_argument(
        "--before-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="'before' is this tree with these settings instead of all re-checks off "
        "(to measure one re-check at a time)",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("set DATABASE_URL to a PostgreSQL URL (the benchmark creates test_<name>)")

    old_name = scratch_database("safechat-socket-recheck-")
    from django.db import connection

    before_tree = args.baseline_tree.resolve() if args.baseline_tree else ROOT
    variants = {
        "before": (
            before_tree,
            {}
            if args.baseline_tree
            else dict(item.split("=", 1) for item in args.before_env) or RECHECKS_OFF,
        ),
        "after": (ROOT, {}),
    }
    runs: dict[str, list[Result]] = {name: [] for name in variants}
    try:
        started = time.perf_counter()
        members, cookie_name = populate(args.clients, args.rooms)
        print(
            f"set up {args.clients} users in {args.rooms} rooms in "
            f"{time.perf_counter() - started:.1f} s; before = "
            f"{before_tree if args.baseline_tree else 'this tree, re-checks off'}"
        )
        base_env = {
            **os.environ,
            "DATABASE_URL": database_url(connection.settings_dict),
            "DATABASE_CONN_MAX_AGE": str(args.conn_max_age),
            "SAFECHAT_POST_RATE_LIMIT": "1000000/1",
        }
        connection.close()
        if args.baseline_tree:
            _legacy_session_clocks()
        pairs = [("before", "after"), ("after", "before")]
        order = [name for r in range(args.rounds) for name in pairs[r % 2]]
        for name in order:
            tree, overrides = variants[name]
            port = free_port()
            env = {
                **base_env,
                **overrides,
                "SAFECHAT_WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
            }
            server = start_server(env, port, tree)
            try:
                result = asyncio.run(
                    measure(
                        SYSTEMS["safechat"],
                        port=port,
                        members=members,
                        cookie_name=cookie_name,
                        room_size=args.clients // args.rooms,
                        rate=args.rate,
                        seconds=args.seconds,
                        warmup=args.warmup,
                    )
                )
            finally:
                stop_server(server)
            runs[name].append(result)
            print(
                f"  {name:7s} {result.deliveries_per_s:8.1f} deliveries/s, p50 "
                f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"{result.delivered}/{result.expected} delivered, {result.errors} errors"
            )
        print(
            f"\n{args.clients} clients in {args.rooms} rooms, {args.rate:g} posts/s, "
            f"{args.seconds:g} s measured, {args.rounds} runs each (median, min-max)"
        )
        for name in variants:
            print(summary(name, runs[name]))
        before = statistics.median(r.p99_ms for r in runs["before"])
        after = statistics.median(r.p99_ms for r in runs["after"])
        rate_before = statistics.median(r.deliveries_per_s for r in runs["before"])
        rate_after = statistics.median(r.deliveries_per_s for r in runs["after"])
        print(
            f"after / before: deliveries/s {rate_after / rate_before:.2f}x, p99 "
            f"{after / before:.2f}x (aim <= 1.10x: {'met' if after <= before * 1.1 else 'missed'})"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
