"""Reusable fixtures: users with and without a verified second factor, servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.models import User
from safechat.supervise import UVICORN_WEBSOCKET_OPTIONS
from tests.accounts.factories import make_user, sign_in_client
from tests.support.clamd import OwnClamd
from tests.support.servers import free_port, wait_until_healthy

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def session_cookie_for(user: User, *, verified: bool) -> str:
    """A real session for ``user``; with ``verified`` it also holds a confirmed TOTP device."""
    client = Client()
    sign_in_client(client, user, verified=verified)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def user() -> User:
    return make_user()


def project_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a SafeChat process started by a test, isolated in ``tmp_path``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SAFECHAT_ENV", "DJANGO_SETTINGS_MODULE"}
    }
    env["SAFECHAT_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env


def shared_database_url() -> str:
    """The URL of the database this test writes to (the test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # django-environ: four slashes for an absolute path; the options match settings.py.
        return f"sqlite:///{Path(db['NAME']).resolve()}?timeout=30&transaction_mode=IMMEDIATE"
    if db["ENGINE"] == "django.db.backends.postgresql":
        credentials = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            credentials += ":" + quote(db["PASSWORD"], safe="")
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return f"postgres://{credentials}@{host}/{quote(db['NAME'], safe='')}"
    raise NotImplementedError(f"no URL form for {db['ENGINE']}")


def start_server(
    env: dict[str, str], port: int, *, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """A uvicorn process serving SafeChat on ``port``, once it answers ``/healthz``.

    Its output goes to the file ``log`` (by default ``server-<port>.log`` beside its data
    directory), never to a pipe: nobody reads a pipe while a test runs, and a server
    whose pipe filled up would block on its next log line, stalling every request and
    socket it serves.
    """
    # As under ``make run``: PORT names the port the portal's origin carries.
    env = {"PORT": str(port), **env}
    if log is None:
        log = Path(env["SAFECHAT_DATA_DIR"]).parent / f"server-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "safechat.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
             *UVICORN_WEBSOCKET_OPTIONS],
            cwd=PROJECT_ROOT, env=env, stderr=subprocess.STDOUT, stdout=output,
        )  # fmt: skip
    return wait_until_healthy(process, port, seconds=30, log=log)


@pytest.fixture
def server_factory() -> Iterator[object]:
    """Start real SafeChat server processes; all are stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def factory(env: dict[str, str]) -> str:
        port = free_port()
        started.append(start_server(env, port))
        return f"http://127.0.0.1:{port}"

    yield factory
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def shared_clamd() -> Iterator[OwnClamd]:
    """A clamd of the tests' own (EICAR only) for tests outside tests/files that need a
    scanner: a file shared in a room, a server the browser uploads to."""
    server = OwnClamd()
    server.start()
    yield server
    server.stop()
