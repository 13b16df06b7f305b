"""The process runner (`make run`): its children stop whatever happens to it, SIGKILL
included, and web, worker and beat all log JSON lines, each naming its process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from safechat.supervise import metrics_folder_prepare
from tests.support.fixtures import PROJECT_ROOT, project_env

# uvicorn, the Celery worker (and its two pool processes) and beat.
EXPECTED_DESCENDANTS = 5


def _children_of() -> dict[int, list[int]]:
    """Every live process's children, read from /proc (state Z, a zombie, is not live)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    return children


def _descendants(pid: int) -> set[int]:
    tree = _children_of()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    live = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.add(pid)
    return live


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_killing_the_runner_with_sigkill_leaves_no_child_behind(tmp_path: Path) -> None:
    # given the runner started as `make run` starts it, with all its processes up
    env = project_env(tmp_path, PORT=str(_free_port()), SAFECHAT_RUN_CLAMD="")
    runner = subprocess.Popen(
        [sys.executable, "-m", "safechat.supervise"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        descendants: set[int] = set()
        while time.monotonic() < deadline:
            assert runner.poll() is None, "the runner stopped while starting"
            descendants = _descendants(runner.pid)
            if len(descendants) >= EXPECTED_DESCENDANTS:
                break
            time.sleep(0.5)
        assert len(descendants) >= EXPECTED_DESCENDANTS, descendants

        # when the runner is killed outright: no handler of its own runs
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)

        # then every process it had started, and theirs, is gone
        deadline = time.monotonic() + 30
        while _alive(descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(descendants) == set()
    finally:
        for pid in _alive(_descendants(runner.pid) | descendants):
            os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_web_worker_and_beat_log_json_lines_and_the_access_line_has_the_request_id(
    tmp_path: Path,
) -> None:
    # given the runner started as `make run` starts it, its processes' log to a file
    port = _free_port()
    # Run as root here, Celery warns so before logging is configured; a container runs
    # as a user (docs/operations.md), where no such warning is written.
    env = project_env(
        tmp_path, PORT=str(port), SAFECHAT_RUN_CLAMD="", PYTHONWARNINGS="ignore::UserWarning"
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        runner = subprocess.Popen(
            [sys.executable, "-m", "safechat.supervise"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        started = {"web": "Application startup complete.", "beat": "beat: Starting..."}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert runner.poll() is None, log.read_text()
            text = log.read_text()
            if all(line in text for line in started.values()) and "ready." in text:
                break
            time.sleep(0.5)

        # when a request reaches the web server
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            request_id = answer.headers["X-Request-ID"]
        time.sleep(1)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)

    # then every line any of them wrote is one JSON object naming its process
    lines: list[dict[str, Any]] = [json.loads(line) for line in log.read_text().splitlines()]
    assert {line["service"] for line in lines} == {"web", "worker", "beat"}
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    # and the server's access line carries the id the response carried
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert [line["request_id"] for line in access] == [request_id]
    assert "/healthz" in access[0]["message"]


def test_the_runner_gives_its_children_one_emptied_metrics_folder(tmp_path: Path) -> None:
    # given a metrics folder left by an earlier run
    folder = tmp_path / "data" / "prometheus"
    folder.mkdir(parents=True)
    (folder / "counter_123.db").write_bytes(b"old counts")
    environ: dict[str, str] = {}

    # when the runner prepares it
    prepared = metrics_folder_prepare(tmp_path / "data", environ)

    # then its children are pointed at it, and the old counts are gone
    assert prepared == folder
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert list(folder.iterdir()) == []
