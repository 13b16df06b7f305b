"""Sign-in cost with the production Argon2id parameters, and its effect on WebSockets.

Usage: python -m benchmarks.auth_bench [--seconds 15] [--rate 10] [--threads 4]

Starts a real uvicorn server (the project's ASGI app, production hasher) pinned
to 2 cores, then prints:
  1. password sign-ins per second at saturation (POST /accounts/sign-in/),
  2. the p50/p99 of a WebSocket ping/pong round trip on /ws/ when idle, and
     while ``--rate`` sign-ins per second run, and their ratio (aim: <= 1.2).
Django runs sync views in a thread under ASGI and argon2-cffi releases the GIL
while hashing, so hashing must not stall the event loop; the ratio shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websockets

from tests.support.servers import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench correct horse battery"  # noqa: S105 - throwaway benchmark accounts
SOCKETS = 10
PING_INTERVAL = 0.25
SETUP = """
import django, time
django.setup()
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import User, UserSession
from accounts.session_policy import session_key_hash
from datetime import timedelta
for i in range({users}):
    User.objects.create_user(f"bench{{i}}", f"bench{{i}}@bank.example", "{password}")
user = User.objects.get(username="bench0")
device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
client = Client()
client.force_login(user, backend="accounts.backends.RoleBackend")
session = client.session
session[DEVICE_ID_SESSION_KEY] = device.persistent_id
session.save()
UserSession.objects.create(user=user, key_hash=session_key_hash(session.session_key),
    last_seen_at=timezone.now() + timedelta(days=1), verified_at=timezone.now(),
    device_id=device.persistent_id)
print(session.session_key)
"""


def prepare(env: dict[str, str], users: int) -> str:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    result = subprocess.run(
        [sys.executable, "-c", SETUP.format(users=users, password=PASSWORD)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "safechat.asgi:application", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    cores = sorted(os.sched_getaffinity(0))[:2]
    cmd = ["taskset", "-c", ",".join(map(str, cores)), *cmd]
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    return wait_until_healthy(process, port, seconds=30)


def sign_in_once(base: str, username: str) -> float:
    """One full password step (GET form, POST credentials); returns its duration."""
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    start_time = time.perf_counter()
    page = opener.open(f"{base}/accounts/sign-in/", timeout=30).read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if match is None:
        raise RuntimeError("no CSRF token on the sign-in page")
    body = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": match.group(1), "username": username, "password": PASSWORD}
    ).encode()
    request = urllib.request.Request(  # noqa: S310
        f"{base}/accounts/sign-in/", data=body, headers={"Referer": base + "/"}
    )
    try:
        opener.open(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code != 302:
            raise
    return time.perf_counter() - start_time


def saturate(base: str, seconds: float, threads: int, users: int) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def worker(index: int) -> None:
        while time.monotonic() < stop:
            sign_in_once(base, f"bench{(index + counts[index]) % users}")
            counts[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    begin = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - begin)


def paced_load(base: str, rate: float, stop: threading.Event, users: int) -> None:
    """``rate`` sign-ins per second, each in its own thread so slowness does not lower the rate."""
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        threading.Thread(target=sign_in_once, args=(base, f"bench{i % users}"), daemon=True).start()
        i += 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))


async def _one_socket(port: int, cookie: str, seconds: float, latencies: list[float]) -> None:
    headers = {"Origin": "http://localhost:8000", "Cookie": f"sessionid={cookie}"}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/", additional_headers=headers) as ws:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            begin = time.perf_counter()
            await ws.send('{"type": "ping"}')
            await ws.recv()
            latencies.append(time.perf_counter() - begin)
            # rooms.socket closes sockets sending over 8 frames/s; stay well under.
            await asyncio.sleep(PING_INTERVAL)


async def echo_latencies(port: int, cookie: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    await asyncio.gather(*(_one_socket(port, cookie, seconds, latencies) for _ in range(SOCKETS)))
    return latencies


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SAFECHAT_DATA_DIR": data,
               "DJANGO_SETTINGS_MODULE": "safechat.settings"}  # fmt: skip
        cookie = prepare(env, args.users)
        port = free_port()
        server = start(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            sign_in_once(base, "bench0")  # warm up
            from accounts.hashers import SafeChatArgon2PasswordHasher as H

            database = "PostgreSQL" if "DATABASE_URL" in env else "SQLite"
            print(f"Argon2id m={H.memory_cost} KiB, t={H.time_cost}, p={H.parallelism}; "
                  f"server pinned to 2 cores; database: {database}")  # fmt: skip
            rate = saturate(base, args.seconds, args.threads, args.users)
            print(f"sign-ins (password step) at saturation: {rate:6.1f} per second")
            idle = asyncio.run(echo_latencies(port, cookie, args.seconds))
            stop = threading.Event()
            load = threading.Thread(target=paced_load, args=(base, args.rate, stop, args.users))
            load.start()
            try:
                busy = asyncio.run(echo_latencies(port, cookie, args.seconds))
            finally:
                stop.set()
                load.join()
            for label, values in (("idle", idle), (f"{args.rate:g} sign-ins/s", busy)):
                print(
                    f"WebSocket ping, {label:16s} p50 {p(values, 50):6.2f} ms  "
                    f"p99 {p(values, 99):6.2f} ms  (n={len(values)})"
                )
            ratio = p(busy, 99) / p(idle, 99)
            print(f"p99 ratio under sign-in load: {ratio:.2f}x (aim <= 1.2x)")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
