"""WebSocket echo through uvicorn and daphne, same app, same clients, same run.

Usage: python -m benchmarks.asgi_servers [--clients 50] [--messages 200]
Prints round trips per second and p50/p99 latency for each server.
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

import websockets

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "x" * 200


def server_command(server: str, port: int) -> list[str]:
    app = "benchmarks.echo_app:application"
    if server.startswith("uvicorn"):
        loop = "asyncio" if server.endswith("asyncio") else "uvloop"
        return [
            sys.executable, "-m", "uvicorn", app, "--port", str(port),
            "--log-level", "error", "--loop", loop,
        ]  # fmt: skip
    return [sys.executable, "-m", "daphne", "-p", str(port), "-v", "0", app]


async def wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/echo/"):
                return
        except OSError:
            await asyncio.sleep(0.2)
        except websockets.InvalidHandshake:
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not come up")


async def client(port: int, messages: int, latencies: list[float]) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/echo/") as ws:
        for _ in range(messages):
            start = time.perf_counter()
            await ws.send(PAYLOAD)
            await ws.recv()
            latencies.append(time.perf_counter() - start)


async def measure(port: int, clients: int, messages: int) -> tuple[float, float, float]:
    await wait_until_up(port)
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(client(port, messages, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, quantiles[49] * 1000, quantiles[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"WebSocket echo, {args.clients} clients x {args.messages} round trips, 200-byte text")
    for server in ("uvicorn", "uvicorn-asyncio", "daphne"):
        port = free_port()
        process = subprocess.Popen(server_command(server, port), cwd=ROOT, env=env)
        try:
            rate, p50, p99 = asyncio.run(measure(port, args.clients, args.messages))
        finally:
            process.terminate()
            process.wait(timeout=10)
        print(f"{server:16s} {rate:9.0f} round trips/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


if __name__ == "__main__":
    main()
