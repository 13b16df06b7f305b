"""Run the whole product in the foreground: web server, Celery worker and beat.

``make run`` calls this. Ctrl-C (or SIGTERM) stops all three together; if one
exits on its own, the others are stopped too, so nothing half-runs unnoticed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

STOP_GRACE_SECONDS = 10

# Options every SafeChat web server runs with (deploy/systemd/safechat-web.service too).
# No permessage-deflate: compressing secrets beside text an attacker can put into the
# same stream lets frame sizes leak them (CRIME/BREACH), and it costs CPU per recipient.
# Frames carry at most a 16 KiB message; 64 KiB leaves room for JSON escaping.
UVICORN_WEBSOCKET_OPTIONS = ["--ws-per-message-deflate", "false", "--ws-max-size", "65536"]


def commands(port: str, host: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "uvicorn", "safechat.asgi:application",
            "--host", host, "--port", port, "--no-server-header",
            "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--loop", "asyncio",
            *UVICORN_WEBSOCKET_OPTIONS,
        ],
        "worker": [
            python, "-m", "celery", "-A", "safechat.celery", "worker",
            "--loglevel", "INFO", "--concurrency", "2", "--without-mingle", "--without-gossip",
        ],
        "beat": [python, "-m", "celery", "-A", "safechat.celery", "beat", "--loglevel", "INFO"],
    }  # fmt: skip


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    for name, argv in commands(port, host).items():
        # Own process group: the terminal's Ctrl-C reaches us, and we stop children in order.
        children[name] = subprocess.Popen(argv, start_new_session=True)  # noqa: S603
    print(f"SafeChat is starting on http://{host}:{port}/ (Ctrl-C stops everything)", flush=True)

    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with {child.returncode}; stopping SafeChat", flush=True)
                exit_code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.5)

    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
