from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django import Settings


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
def _own_vault(vault_dir: Path) -> Path:
    """Every test here stores its blobs in a folder of its own (``vault_dir``)."""
    return vault_dir
