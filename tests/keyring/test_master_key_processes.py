"""A new master-key version takes effect in every running process (issue 12, case 2).

Two real processes besides the test: one serves posts and reads throughout (with no key
cache, so every read unwraps a private key), the other runs ``rotate_master_key
--new-version``. The serving process never learns of the new version from its interval
(set to an hour): it must re-read its key source when it meets the new version. The
serving process is a worker calling the services, and a real web server answering the
API, on the local key file and on SoftHSM2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from pytest_django import Settings

from accounts.services.tokens import api_token_create
from rooms.services import message_post
from safechat.crypto.providers.pkcs11 import Pkcs11Config, pkcs11_generate_kek
from safechat.keyring.provider import reset_provider
from safechat.keyring.rotation import master_key_rotate, master_key_status
from safechat.keyring.services import clear_key_caches
from tests.accounts.factories import make_user
from tests.crypto.test_providers_pkcs11 import token  # noqa: F401 - the SoftHSM2 fixture
from tests.rooms.factories import make_room
from tests.rooms.test_scale_out import stop
from tests.support.fixtures import project_env, shared_database_url, start_server
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.keyring.process_worker", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rounds(self, count: int, *, seconds: float = 60) -> None:
        """Wait until the serving process completed ``count`` more rounds."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        seen = 0
        while seen < count:
            assert time.monotonic() < deadline, "the serving process stalled"
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the serving process died: {self.process.stderr.read()}")  # type: ignore[union-attr]
            if "round" in json.loads(line):
                seen += 1

    def summary(self) -> dict[str, object]:
        assert self.process.stdout is not None
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        return dict(json.loads([line for line in out.splitlines() if line][-1]))


def worker_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        SAFECHAT_DATA_DIR=str(tmp_path / "worker-data"),
        SAFECHAT_KEY_CACHE_SECONDS="0",
        SAFECHAT_MASTER_KEY_REFRESH_SECONDS="3600",
    )
    env.update(overrides)
    return env


def rotate_while_serving(tmp_path: Path, env: dict[str, str]) -> dict[str, object]:
    """Given a room with messages, rotate in one process while another serves."""
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    for i in range(3):
        message_post(sender=member, room=room, text=f"before rotation {i}")
    database = str(connection.settings_dict["NAME"])
    stop_file = tmp_path / "stop"
    users = f"{owner.pk},{member.pk}"
    server = Worker("serve", database, str(room.pk), users, str(stop_file), env=env)
    try:
        server.rounds(3)
        rotation = subprocess.run(
            [sys.executable, "-m", "tests.keyring.process_worker", "rotate", database],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert rotation.returncode == 0, rotation.stderr
        assert "added master-key version 2" in rotation.stdout
        server.rounds(5)
    finally:
        stop_file.touch()
    return server.summary()


def test_a_new_local_version_is_used_by_a_running_process(
    master_key_file: Path, tmp_path: Path
) -> None:
    env = worker_env(
        tmp_path, SAFECHAT_KEY_PROVIDER="local", SAFECHAT_MASTER_KEY_FILE=str(master_key_file)
    )
    env.pop("SAFECHAT_MASTER_KEYS", None)

    summary = rotate_while_serving(tmp_path, env)

    assert summary["errors"] == []
    assert int(summary["reads"]) > 0  # type: ignore[call-overload]
    clear_key_caches()
    reset_provider()
    status = master_key_rotate()  # whatever the server wrapped before it re-read the file
    assert (status.current_version, status.remaining) == (2, 0)


@pytest.fixture
def hsm_settings(
    token: Pkcs11Config,  # noqa: F811 - the imported fixture
    settings: Settings,
) -> Iterator[dict[str, str]]:
    pkcs11_generate_kek(token)
    config = {
        "SAFECHAT_KEY_PROVIDER": "pkcs11",
        "SAFECHAT_PKCS11_LIBRARY": token.library_path,
        "SAFECHAT_PKCS11_TOKEN_LABEL": token.token_label,
        "SAFECHAT_PKCS11_PIN": token.user_pin,
    }
    for name, value in config.items():
        setattr(settings, name, value)
    settings.SAFECHAT_MASTER_KEY_FILE = ""
    reset_provider()
    clear_key_caches()
    yield config
    reset_provider()


def test_a_new_hsm_version_is_used_by_a_running_process(
    hsm_settings: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(tmp_path, **hsm_settings, SAFECHAT_MASTER_KEY_FILE="")
    env.pop("SAFECHAT_MASTER_KEYS", None)

    summary = rotate_while_serving(tmp_path, env)

    assert summary["errors"] == []
    clear_key_caches()
    reset_provider()
    status = master_key_rotate()
    assert (status.current_version, status.remaining) == (2, 0)
    assert master_key_status().wrapped_by(1) == 0


class ApiClient:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url, self.secret = base_url, secret

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")


def serve_throughout(client: ApiClient, room_id: int, stop_serving: threading.Event) -> list[str]:
    """Read every message and post one, over and over, until told to stop; what failed."""
    failures: list[str] = []
    rounds = 0
    while not stop_serving.is_set() or rounds < 3:
        rounds += 1
        try:
            status, page = client.call("GET", f"/api/v1/rooms/{room_id}/messages/?limit=100")
            if status != 200 or any(m["text"] is None for m in page["results"]):
                failures.append(f"read: {status} {[m['text'] for m in page['results']]}")
            status, _ = client.call(
                "POST", f"/api/v1/rooms/{room_id}/messages/", {"text": f"round {rounds}"}
            )
            if status != 201:
                failures.append(f"post: {status}")
        except urllib.error.HTTPError as error:
            failures.append(f"{error.code} {error.read()[:200]!r}")
        time.sleep(0.05)
    return failures


def rotate_under_a_web_server(tmp_path: Path, env: dict[str, str]) -> list[str]:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    for i in range(3):
        message_post(sender=owner, room=room, text=f"before rotation {i}")
    _, secret = api_token_create(actor=member, name="rotation test", scope="write")
    port = free_port()
    server = start_server(env, port)
    try:
        client = ApiClient(f"http://127.0.0.1:{port}", secret)
        stop_serving = threading.Event()
        failures: list[str] = []
        serving = threading.Thread(
            target=lambda: failures.extend(serve_throughout(client, room.pk, stop_serving))
        )
        serving.start()
        time.sleep(1)
        rotation = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "rotate_master_key",
                "--new-version",
                "--batch-size",
                "1",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        time.sleep(1)
        stop_serving.set()
        serving.join(timeout=60)
        assert rotation.returncode == 0, rotation.stderr
        assert "added master-key version 2" in rotation.stdout
    finally:
        stop(server)
    return failures


def web_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return project_env(
        tmp_path,
        DATABASE_URL=shared_database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        SAFECHAT_AUDIT_SIGNING_KEY_FILE=str(settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE),
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        SAFECHAT_KEY_CACHE_SECONDS="0",
        SAFECHAT_MASTER_KEY_REFRESH_SECONDS="3600",
        # The serving thread posts every 50 ms: the posting limit is not what is tested.
        SAFECHAT_POST_RATE_LIMIT="100000/1",
        **overrides,
    )


def test_a_running_web_server_reads_and_posts_through_a_new_local_version(
    master_key_file: Path, tmp_path: Path
) -> None:
    env = web_env(tmp_path, SAFECHAT_MASTER_KEY_FILE=str(master_key_file))
    env.pop("SAFECHAT_MASTER_KEYS", None)

    assert rotate_under_a_web_server(tmp_path, env) == []


def test_a_running_web_server_reads_and_posts_through_a_new_hsm_version(
    hsm_settings: dict[str, str], tmp_path: Path
) -> None:
    env = web_env(tmp_path, **hsm_settings, SAFECHAT_MASTER_KEY_FILE="")
    env.pop("SAFECHAT_MASTER_KEYS", None)

    assert rotate_under_a_web_server(tmp_path, env) == []
