"""Starting real server processes, for tests and benchmarks (no Django needed here)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(
    process: subprocess.Popen[bytes], port: int, *, seconds: float, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Return ``process`` once it answers ``/healthz``; kill it and raise if it never does.

    Its output is read from its pipe, or from ``log`` when it writes to that file.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if log is not None:
                output = log.read_text(errors="replace")
            else:
                output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"server exited early with status {process.returncode}\n{output}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            # Not listening yet, or (a busy machine) too slow with its first answer: the
            # deadline decides, not one slow answer.
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not answer /healthz within {seconds:g} s")
