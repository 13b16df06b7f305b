"""Shared helpers of the browser tests: Debian's Chromium driven by Playwright, a real
uvicorn server on this test's database, and signing in through the real pages.

The server is a real uvicorn process (``tests/support/fixtures.py::start_server``)
pointed at the test's database, rather than ``ChannelsLiveServerTestCase``:
- it is the ASGI server production runs (docs/asgi-server.md), so the page, the
  socket, origin checks and static files are exercised as deployed;
- its environment is explicit: the same database (SQLite file or PostgreSQL),
  the same Redis when ``REDIS_URL`` is set (else its own in-memory channel layer,
  which is enough as every browser talks to this one process), and the test's
  master key file, which ``ChannelsLiveServerTestCase`` (started once per class,
  before our per-test fixtures) would not see;
- stopping it is ours, before pytest-django flushes the database.
Tests using it are transactional, so what they create is committed and visible to the server.

Most browser tests open the same way: passwords hashed as the server checks them, fresh
rate limits, then the server, Chromium and people signed in. The ``chat_browser`` fixture
(tests/rooms/conftest.py) gives them that, through :func:`browser_session`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, connections
from django_otp.oath import totp
from playwright.sync_api import (
    Browser,
    BrowserContext,
    BrowserType,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from accounts.models import User
from tests.accounts.factories import make_totp_device
from tests.support.axe import AXE_CONTEXT
from tests.support.fixtures import PROJECT_ROOT, project_env, start_server
from tests.support.servers import free_port

CHROMIUM = Path(os.environ.get("SAFECHAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
PASSWORD = "correct horse battery staple"
LIVE = 10_000  # ms: how long a live update may take to show


@dataclass(frozen=True)
class Person:
    username: str
    # What an authenticator app holds: the TOTP key and parameters (read before the
    # browser runs, as Django's ORM refuses to run inside Playwright's event loop).
    key: bytes
    step: int
    t0: int
    digits: int

    def code(self) -> str:
        value = totp(self.key, step=self.step, t0=self.t0, digits=self.digits)
        return f"{value:0{self.digits}d}"


def person(user: User) -> Person:
    device = make_totp_device(user)
    return Person(user.get_username(), device.bin_key, device.step, device.t0, device.digits)


def database_url() -> str:
    """The URL of the test database this process uses, for the server process."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(str(config['NAME'])).resolve()}"
    if connection.vendor == "postgresql":
        auth = quote(str(config["USER"] or ""), safe="")
        if config.get("PASSWORD"):
            auth += ":" + quote(str(config["PASSWORD"]), safe="")
        host = config["HOST"] or "127.0.0.1"
        port = config["PORT"] or 5432
        return f"postgres://{auth}{'@' if auth else ''}{host}:{port}/{config['NAME']}"
    raise AssertionError(f"no server URL for the {connection.vendor} backend")


@contextmanager
def running_server(
    tmp_path: Path, master_key_file: Path, **overrides: str
) -> Iterator[tuple[str, Stopper]]:
    env = project_env(
        tmp_path,
        DATABASE_URL=database_url(),
        SAFECHAT_MASTER_KEY_FILE=str(master_key_file),
        **overrides,
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = str(settings.REDIS_URL)
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    process = start_server(env, port, log=log)
    stopper = Stopper(process)
    try:
        yield f"http://127.0.0.1:{port}", stopper
    except BaseException:
        # A failing browser test shows what its server said (pytest prints it with the
        # failure): a refused request, a socket closed with an error.
        print(f"--- the server's log ({log.name}), last 20,000 characters ---")
        print(log.read_text(errors="replace")[-20_000:])
        raise
    finally:
        stopper.stop()


class Stopper:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(chromium: BrowserType) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is needed for the portal browser test and is not at {CHROMIUM}. "
            "Install it (Debian: apt-get install chromium) or set SAFECHAT_CHROMIUM."
        )
    return chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def in_thread(func: Callable[..., object], **kwargs: object) -> None:
    """Run database work off this thread, where Playwright's event loop forbids it."""

    def run() -> None:
        try:
            func(**kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run).result()


@dataclass
class BrowserSession:
    """A running server and Chromium (``browser_session``); every page signed in through
    it records its console and page errors in ``errors``."""

    base_url: str
    browser: Browser
    server: Stopper
    errors: list[str] = field(default_factory=list)

    def sign_in(
        self,
        who: Person,
        path: str = "/rooms/",
        *,
        lands_on: str | None = None,
        width: int = 1280,
        height: int = 900,
        **context_options: Any,
    ) -> Page:
        """A new browser context of ``width`` x ``height`` (axe may run in it:
        ``AXE_CONTEXT``), signed in as ``who`` through the real pages, on ``path``."""
        context = self.browser.new_context(
            viewport={"width": width, "height": height}, **{**AXE_CONTEXT, **context_options}
        )
        return sign_in(context, self.base_url, who, self.errors, path, lands_on)


@contextmanager
def browser_session(
    tmp_path: Path, master_key_file: Path, **server_overrides: str
) -> Iterator[BrowserSession]:
    """The server on this test's database and Chromium, for a ``with`` block entered once
    the test's data is made (the ORM cannot run inside Playwright's event loop); both are
    stopped on leaving it."""
    with (
        running_server(tmp_path, master_key_file, **server_overrides) as (base_url, server),
        sync_playwright() as playwright,
    ):
        browser = launch(playwright.chromium)
        try:
            yield BrowserSession(base_url, browser, server)
        finally:
            browser.close()


# What the ``chat_browser`` fixture gives: ``with chat_browser() as browser: ...``.
ChatBrowser = Callable[..., AbstractContextManager[BrowserSession]]


def watch_for_errors(page: Page, errors: list[str]) -> None:
    def console(message: ConsoleMessage) -> None:
        source = message.location.get("url", "")
        if message.type == "error":
            errors.append(f"{page.url}: {message.text} ({source})")

    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", console)


def sign_in(
    context: BrowserContext,
    base_url: str,
    who: Person,
    errors: list[str],
    path: str = "/rooms/",
    lands_on: str | None = None,
) -> Page:
    """Through the real pages: the chat -> sign-in -> second factor -> back to the chat."""
    page = context.new_page()
    watch_for_errors(page, errors)
    page.goto(f"{base_url}{path}")
    expect(page).to_have_url(re.compile(r"/accounts/sign-in/\?next="))
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/accounts/second-factor/\?next="))
    page.get_by_label("Code").fill(who.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{base_url}{lands_on or path}")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "connected")
    return page
