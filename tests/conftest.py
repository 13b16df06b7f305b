"""Fixtures shared by every app's tests."""

from __future__ import annotations

import pytest
from pytest_django import Settings

pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """Argon2id with production parameters costs tens of ms per hash; tests need speed.

    The production hasher order is asserted separately.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
