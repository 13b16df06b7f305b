"""A new master-key version takes effect in every running process (issue 12, case 2).

Two real processes besides the test: one serves posts and reads throughout (with no key
cache, so every read unwraps a private key), the other runs ``rotate_master_key
--new-version``. The serving process never learns of the new version from its interval
(set to an hour): it must re-read its key source when it meets the new version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from pytest_django import Settings

from rooms.services import message_post
from safechat.crypto.providers.pkcs11 import Pkcs11Config, pkcs11_generate_kek
from safechat.keyring.provider import reset_provider
from safechat.keyring.rotation import master_key_rotate, master_key_status
from safechat.keyring.services import clear_key_caches
from tests.accounts.factories import make_user
from tests.crypto.test_providers_pkcs11 import token  # noqa: F401 - the SoftHSM2 fixture
from tests.rooms.factories import make_room

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
