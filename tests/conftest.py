"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings

from safechat.keyring.provider import reset_provider
from safechat.keyring.services import clear_key_caches
from tests.support.clamd import OwnClamd

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.audit_db",
    "tests.support.audit_context",
    "tests.support.oidc",
    "tests.support.logs",
]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """Argon2id with production parameters costs tens of ms per hash; tests need speed.

    The production hasher order is asserted separately.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def master_key_file(settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """Each test gets its own master key file (created on first use, mode 0600)."""
    key_file = tmp_path / "master-keys.json"
    settings.SAFECHAT_KEY_PROVIDER = "local"
    settings.SAFECHAT_MASTER_KEYS = ""
    settings.SAFECHAT_MASTER_KEY_FILE = str(key_file)
    reset_provider()
    clear_key_caches()
    yield key_file
    reset_provider()
    clear_key_caches()


@pytest.fixture(autouse=True)
def audit_anchor_file(settings: Settings, tmp_path: Path) -> Path:
    """Each test anchors audit checkpoints into its own file, empty as ``migrate`` leaves it
    for a new log: never into the data folder's, which a developer's server or another test
    run uses. A test that needs another file sets the setting itself."""
    anchor_file = tmp_path / "audit-anchors.jsonl"
    anchor_file.touch(mode=0o600)
    settings.SAFECHAT_AUDIT_ANCHOR_FILE = str(anchor_file)
    return anchor_file


@pytest.fixture(autouse=True)
def _integrity_reports_forgotten() -> Iterator[None]:
    """Integrity failures are audited once per item per process; ids are reused across
    tests, so each test starts with none reported."""
    from safechat.keyring import integrity

    integrity.forget_reported()
    yield
    integrity.forget_reported()


@pytest.fixture(autouse=True)
def _supervision_matcher_forgotten() -> Iterator[None]:
    """The compiled supervision matcher and rates are kept per process and the version is
    read again only every few seconds, so each test starts (and ends) with none cached."""
    from compliance.services import supervision

    supervision._posted_forget()
    yield
    supervision._posted_forget()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Rate-limit counters, throttles and presence live in the cache; ids are reused across
    tests."""
    from django.core.cache import cache

    from files.scanner import scanner_state_forget
    from rooms.presence import presence_reset
    from safechat.ratelimit import rate_limits_reset

    cache.clear()
    presence_reset()
    rate_limits_reset()
    scanner_state_forget()  # what this process found of clamd: tests configure their own
    yield
    cache.clear()
    presence_reset()
    rate_limits_reset()


@pytest.fixture(scope="session", autouse=True)
def _socket_thread_connections_closed(django_db_setup: None) -> Iterator[None]:
    """Close the database connections that socket work left open in helper threads before
    the test database is dropped: channels' test communicator turns off the closing that
    ``database_sync_to_async`` does after each call. Finished event loops' pool threads
    release theirs when collected.
    """
    yield
    import gc

    from rooms.write_threads import close_connections

    close_connections()
    gc.collect()


@pytest.fixture(scope="session")
def clamd_server() -> Iterator[OwnClamd]:
    """One clamd for the whole session (the vault's and retention's tests alike): it starts
    in well under a second with its tiny database."""
    server = OwnClamd()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clamd(clamd_server: OwnClamd, settings: Settings) -> OwnClamd:
    """The settings point at the tests' clamd."""
    settings.SAFECHAT_CLAMD_SOCKET = clamd_server.socket_path
    settings.SAFECHAT_CLAMD_HOST = ""
    return clamd_server


@pytest.fixture
def vault_dir(settings: Settings, tmp_path: Path) -> Path:
    """The file vault's storage in a folder of this test's own."""
    folder = tmp_path / "vault"
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder), "base_url": None},
        },
    }
    return folder
