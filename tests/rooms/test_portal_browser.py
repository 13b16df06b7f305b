"""The chat portal in a real browser: two people sign in with a password and a TOTP code,
talk live over the WebSocket, edit, reply in a thread, and see the connection drop.

The server is a real uvicorn process (``tests/support/fixtures.py::start_server``)
pointed at this test's database, rather than ``ChannelsLiveServerTestCase``:
- it is the ASGI server production runs (docs/asgi-server.md), so the page, the
  socket, origin checks and static files are exercised as deployed;
- its environment is explicit: the same database (SQLite file or PostgreSQL),
  the same Redis when ``REDIS_URL`` is set (else its own in-memory channel layer,
  which is enough as both browsers talk to this one process), and this test's
  master key file, which ``ChannelsLiveServerTestCase`` (started once per class,
  before our per-test fixtures) would not see;
- stopping it is ours, before pytest-django flushes the database.
The test is transactional, so what it creates is committed and visible to the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.cache import cache
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
from pytest_django import Settings

from accounts.models import User
from rooms.models import Message, Room
from rooms.services import message_post
from tests.accounts.factories import make_totp_device, make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.fixtures import PROJECT_ROOT, project_env, start_server
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

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


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """The posting limit counts per user id in the cache, which outlives a test: ids
    are reused from test to test, so earlier tests' posts would count against ours."""
    cache.clear()


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
    process = start_server(env, port)
    stopper = Stopper(process)
    try:
        yield f"http://127.0.0.1:{port}", stopper
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


def watch_for_errors(page: Page, errors: list[str]) -> None:
    def console(message: ConsoleMessage) -> None:
        source = message.location.get("url", "")
        # No page declares an icon, so the browser's own /favicon.ico probe is a 404.
        if message.type == "error" and not source.endswith("/favicon.ico"):
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


def test_two_people_chat_live_in_the_browser(
    tmp_path: Path, master_key_file: Path, settings: Settings
) -> None:
    started = time.monotonic()
    # The server verifies passwords with the production hasher list; the suite's fast
    # MD5 hasher is not in it, Django's Argon2 hasher is (and costs ~50 ms).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    alice_user, bob_user = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=alice_user, members=(bob_user,), name="Rates desk")
    make_room(owner=alice_user, members=(bob_user,), name="FX desk")
    make_room(owner=bob_user, members=(alice_user,), name="Credit desk")
    Room.objects.filter(pk=room.pk).update(topic="EUR rates: fills, axes and run-throughs")
    opener = message_post(
        sender=bob_user, room=room, text="Morning. Who is covering the 10y today?"
    )
    message_post(
        sender=alice_user, room=room, text="I am. Axe list in `#rates-axes`.", parent_id=opener.pk
    )
    message_post(sender=bob_user, room=room, text="Thanks. Client asking for **5m 2y** at mid.")
    alice, bob = person(alice_user), person(bob_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, server), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            alice_context = browser.new_context(viewport={"width": 1440, "height": 900})
            bob_context = browser.new_context(viewport={"width": 1280, "height": 800})
            alice_page = sign_in(alice_context, base_url, alice, errors, f"/rooms/?room={room.pk}")
            bob_page = sign_in(bob_context, base_url, bob, errors)

            # Bob starts in the first room (Credit desk) and moves down two, keyboard only.
            expect(bob_page.locator("#room-title")).to_contain_text("Credit desk")
            for expected in ("FX desk", "Rates desk"):
                bob_page.keyboard.press("Alt+ArrowDown")
                expect(bob_page.locator("#room-title")).to_contain_text(expected)
            expect(bob_page.locator("#connection-state")).to_have_attribute(
                "data-state", "connected"
            )
            # Alice was there first: Bob learns that she is online from the snapshot.
            alice_row = bob_page.locator(f'#member-list li[data-user-id="{alice_user.pk}"]')
            expect(alice_row.locator(".presence")).to_have_attribute(
                "data-state", "online", timeout=LIVE
            )

            # Alice types: Bob sees the typing indicator, then the message, live.
            composer = alice_page.locator("#composer-input")
            composer.press_sequentially("Filled 5m 2y at 99.5", delay=20)
            expect(bob_page.locator("#typing-indicator")).to_have_text(
                "alice is typing…", timeout=LIVE
            )
            composer.fill("Filled **5m 2y** at 99.5")
            composer.press("Enter")
            bob_list = bob_page.locator("#message-list")
            expect(bob_list.locator("strong", has_text="5m 2y").last).to_be_visible(timeout=LIVE)
            expect(bob_list).to_contain_text("at 99.5", timeout=LIVE)
            expect(alice_page.locator("#message-list .pending")).to_have_count(0, timeout=LIVE)
            expect(composer).to_have_value("")

            # Alice edits it from the keyboard (Up in the empty composer); Bob sees the edit.
            composer.press("ArrowUp")
            expect(alice_page.locator("#composer-context")).to_contain_text("Editing")
            composer.fill("Filled **5m 2y** at 99.75")
            composer.press("Enter")
            expect(bob_list).to_contain_text("at 99.75", timeout=LIVE)
            edited = bob_list.locator(".message-item", has_text="at 99.75").last
            expect(edited.locator(".msg-edited")).to_be_visible()

            # Bob replies in the thread, keyboard only: focus Reply, Enter, type, Enter.
            original = bob_list.locator(":scope > .message-item", has_text="at 99.75").last
            original.locator("[data-action=reply]").focus()
            bob_page.keyboard.press("Enter")
            expect(bob_page.locator("#composer-context")).to_contain_text("Replying in thread")
            expect(bob_page.locator("#composer-input")).to_be_focused()
            bob_page.keyboard.type("Booked, thanks")
            bob_page.keyboard.press("Enter")
            alice_thread = alice_page.locator(".message-item", has_text="at 99.75").last
            expect(alice_thread.locator("ol.thread")).to_contain_text(
                "Booked, thanks", timeout=LIVE
            )

            # A message whose broadcast never reaches the pages (as when two servers
            # deliver out of order and a connection drops in between): at the next one,
            # both pages see a number skipped and fetch what they missed.
            with mock.patch("rooms.services.messages.publish"):
                in_thread(message_post, sender=bob_user, room=room, text="Also 10m 5y at 101.2")
            composer.fill("Done for today")
            composer.press("Enter")
            expect(bob_list).to_contain_text("Done for today", timeout=LIVE)
            for page in (alice_page, bob_page):
                expect(page.locator("#message-list")).to_contain_text(
                    "10m 5y at 101.2", timeout=LIVE
                )

            alice_page.locator("#composer-input").focus()
            ARTIFACTS.mkdir(exist_ok=True)
            alice_page.screenshot(path=str(ARTIFACTS / "portal-chat.png"))

            # Alice removes Bob with the member panel's form; Bob's page drops the room at once.
            alice_page.once("dialog", lambda dialog: dialog.accept())  # data-confirm
            bob_row = alice_page.locator("#member-list li", has_text="bob")
            bob_row.locator("summary").click()
            bob_row.get_by_role("button", name="Remove from room").click()
            expect(alice_page.locator(".messages")).to_contain_text("bob was removed.")
            expect(bob_page.locator("#notices")).to_contain_text(
                "You no longer have access to Rates desk", timeout=LIVE
            )
            expect(bob_page.locator("#message-list .message-item")).to_have_count(0)
            expect(bob_page.locator("#room-list")).not_to_contain_text("Rates desk")
            expect(alice_page.locator("#connection-state")).to_have_attribute(
                "data-state", "connected"
            )

            # The server goes away: both pages say so, visibly.
            server.stop()
            for page in (alice_page, bob_page):
                expect(page.locator("#connection-state")).to_have_attribute(
                    "data-state", "reconnecting", timeout=LIVE
                )
                expect(page.locator("#connection-state")).to_contain_text("Reconnecting")
            alice_page.screenshot(path=str(ARTIFACTS / "portal-reconnecting.png"))
        finally:
            browser.close()

    # Socket errors after the server stopped are expected; nothing else may fail.
    problems = [e for e in errors if "WebSocket" not in e and "ERR_CONNECTION_REFUSED" not in e]
    assert problems == []
    stored = Message.objects.get(room=room, sender=alice_user, parent=None, revision__gt=0)
    assert stored.revision == 1  # edited once; the first text is kept as a revision
    assert Message.objects.filter(room=room, sender=bob_user, parent=stored).count() == 1
    assert time.monotonic() - started < 60


def test_the_page_warns_before_an_idle_sign_out_and_lets_the_person_stay(
    tmp_path: Path, master_key_file: Path, settings: Settings
) -> None:
    # given a short idle limit, warned 8 s ahead, and a person who only reads
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    owner = make_user(username="carol")
    make_room(owner=owner, name="Quiet desk")
    carol = person(owner)
    errors: list[str] = []
    limits = {"SAFECHAT_SESSION_IDLE_SECONDS": "12", "SAFECHAT_SESSION_WARNING_SECONDS": "8"}

    with (
        running_server(tmp_path, master_key_file, **limits) as (base_url, _),
        sync_playwright() as pw,
    ):
        browser = launch(pw.chromium)
        try:
            page = sign_in(browser.new_context(), base_url, carol, errors)
            warning = page.get_by_role("alertdialog")

            # when the warning shows, the person chooses to stay
            expect(warning).to_contain_text("because of inactivity", timeout=LIVE)
            expect(page.get_by_role("button", name="Stay signed in")).to_be_focused()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "portal-idle-warning.png"))
            page.get_by_role("button", name="Stay signed in").click()
            expect(warning).to_be_hidden()

            # then, past the first deadline, the page is still connected
            page.wait_for_timeout(6_000)
            expect(page.locator("#connection-state")).to_have_attribute("data-state", "connected")

            # and a person who stays away is signed out, and told why
            expect(page.locator("#connection-state")).to_have_attribute(
                "data-state", "ended", timeout=20_000
            )
            expect(page.locator("#connection-state")).to_contain_text("inactivity")
            page.screenshot(path=str(ARTIFACTS / "portal-idle-signed-out.png"))
        finally:
            browser.close()

    assert [e for e in errors if "WebSocket" not in e] == []


def test_a_new_room_admin_starts_a_room_and_a_conversation_from_the_portal(
    tmp_path: Path, master_key_file: Path, settings: Settings
) -> None:
    # Given a fresh room admin with no room, and a colleague in the directory
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    admin_user = make_room_admin(username="rita")
    colleague = make_user(username="colm", first_name="Colm", last_name="Byrne")
    rita = person(admin_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            # When she signs in from the root, she lands in the chat, which offers a way in
            page = sign_in(context, base_url, rita, errors, "/", lands_on="/rooms/")
            expect(page.locator(".message-empty")).to_contain_text("You are not in any room yet")

            # She creates a room from the rooms pane
            page.get_by_role("link", name="New room").first.click()
            page.get_by_label("Name").fill("Rates desk")
            page.get_by_label("Topic").fill("EUR swaps")
            page.get_by_role("button", name="Create room").click()
            expect(page.locator("#room-title")).to_contain_text("Rates desk")
            expect(page.locator(".messages")).to_contain_text("was created")

            # And starts a conversation with a colleague found by name
            page.get_by_role("link", name="New conversation").first.click()
            page.get_by_label("Find people").fill("byrne")
            page.get_by_role("button", name="Search").click()
            page.get_by_label("Colm Byrne").check()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "portal-new-conversation.png"))
            page.get_by_role("button", name="Start conversation").click()
            expect(page.locator("#room-title")).to_contain_text("colm")
            expect(page.locator("#room-list")).to_contain_text("Rates desk")
            page.screenshot(path=str(ARTIFACTS / "portal-new-room-and-conversation.png"))

            # And finds him again in the directory: "Message" opens the same conversation
            page.get_by_role("navigation", name="Account").get_by_role(
                "link", name="People"
            ).click()
            page.get_by_label("Name or username").fill("colm")
            page.get_by_role("button", name="Search").click()
            card = page.locator(".person-card", has_text="Colm Byrne")
            expect(card).to_contain_text("@colm")
            page.screenshot(path=str(ARTIFACTS / "portal-people.png"))
            card.get_by_role("button", name="Message").click()
            expect(page.locator("#room-title")).to_contain_text("colm")
        finally:
            browser.close()

    # Then both exist with the right people, and no page error was seen
    assert errors == []
    room = Room.objects.get(name="Rates desk")
    assert list(room.memberships.values_list("user__username", flat=True)) == ["rita"]
    direct = Room.objects.get(kind=Room.Kind.DIRECT)
    assert sorted(direct.memberships.values_list("user__username", flat=True)) == ["colm", "rita"]
    assert colleague.pk in direct.memberships.values_list("user_id", flat=True)
