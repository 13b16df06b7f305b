"""Every audit test signs with a fixed test key and anchors into its own folder."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django import Settings

from audit import signing

# A fixed Ed25519 seed: tests only, never a deployment.
TEST_SIGNING_SEED = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(autouse=True)
def audit_settings(settings: Settings, audit_anchor_file: Path) -> Iterator[Path]:
    """The anchor file of this test (tests/conftest.py: its own, empty, as ``migrate``
    leaves it for a new log), and a fixed signing key."""
    anchor_file = audit_anchor_file
    settings.SAFECHAT_AUDIT_SIGNING_KEY = TEST_SIGNING_SEED
    settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE = ""
    settings.SAFECHAT_AUDIT_SYSLOG_ADDRESS = ""
    settings.SAFECHAT_AUDIT_PREVIOUS_PUBLIC_KEYS = []
    signing.cache_clear()
    yield anchor_file
    signing.cache_clear()
