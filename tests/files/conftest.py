"""The vault's tests scan with a real clamd of their own (tests/support/clamd.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django import Settings


@pytest.fixture(autouse=True)
def _no_clamd_unless_asked(settings: Settings) -> None:
    """Without the ``clamd`` fixture, no scanner is configured (whatever the environment)."""
    settings.SAFECHAT_CLAMD_SOCKET = ""
    settings.SAFECHAT_CLAMD_HOST = ""


@pytest.fixture(autouse=True)
def _own_vault(vault_dir: Path) -> Path:
    """Every test here stores its blobs in a folder of its own (``vault_dir``)."""
    return vault_dir
