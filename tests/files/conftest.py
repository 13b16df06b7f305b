"""The vault's tests scan with a real clamd of their own (tests/support/clamd.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings

from tests.support.clamd import OwnClamd


@pytest.fixture(scope="session")
def clamd_server() -> Iterator[OwnClamd]:
    """One clamd for the session: it starts in well under a second with its tiny database."""
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


@pytest.fixture(autouse=True)
def _no_clamd_unless_asked(settings: Settings) -> None:
    """Without the ``clamd`` fixture, no scanner is configured (whatever the environment)."""
    settings.SAFECHAT_CLAMD_SOCKET = ""
    settings.SAFECHAT_CLAMD_HOST = ""


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
