"""Fixtures of the rooms tests."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from pytest_django import Settings

from tests.support.browser import ChatBrowser, browser_session

# The hasher the server checks passwords with (production's list, Argon2 first; the
# suite's fast MD5 hasher is not in it), for the people a browser test signs in.
SERVER_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]


@pytest.fixture
def chat_browser(tmp_path: Path, master_key_file: Path, settings: Settings) -> ChatBrowser:
    """A browser test's setup: people made from here on have passwords the server
    checks (rate limits start fresh for every test: tests/conftest.py), and
    ``with chat_browser() as browser:``, entered once the test's data is made, runs the
    server and Chromium (``tests.support.browser.browser_session``; keyword arguments
    are the server's environment)."""
    settings.PASSWORD_HASHERS = SERVER_HASHERS
    return partial(browser_session, tmp_path, master_key_file)
