from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings

from tests.support.clamd import OwnClamd


@pytest.fixture(autouse=True)
def _short_minimum(settings: Settings) -> None:
    """Policies of a few days, so tests need not date messages years back."""
    settings.SAFECHAT_RETENTION_MINIMUM_DAYS = 1
    settings.SAFECHAT_BACKUP_RETENTION_DAYS = 0


@pytest.fixture(autouse=True)
def _posting_unlimited(settings: Settings) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (100000, 10)
    settings.SAFECHAT_REACTION_RATE_LIMIT = (100000, 10)


@pytest.fixture(autouse=True)
def vault_dir(settings: Settings, tmp_path: Path) -> Path:
    """Each test stores its blobs in a folder of its own."""
    folder = tmp_path / "vault"
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder), "base_url": None},
        },
    }
    return folder


@pytest.fixture(scope="session")
def clamd_server() -> Iterator[OwnClamd]:
    server = OwnClamd()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clamd(clamd_server: OwnClamd, settings: Settings) -> OwnClamd:
    settings.SAFECHAT_CLAMD_SOCKET = clamd_server.socket_path
    settings.SAFECHAT_CLAMD_HOST = ""
    return clamd_server
