"""The chat portal in a real browser: two people sign in with a password and a TOTP code,
talk live over the WebSocket, edit, reply in a thread, and see the connection drop.

The browser, the server and signing in are shared with the other browser tests
(tests/support/browser.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import pytest
from django.core.cache import cache
from playwright.sync_api import expect, sync_playwright
from pytest_django import Settings

from rooms.models import Message, Room
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    in_thread,
    launch,
    person,
    running_server,
    sign_in,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """The posting limit counts per user id in the cache, which outlives a test: ids
    are reused from test to test, so earlier tests' posts would count against ours."""
    cache.clear()


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
                # the page's script is running (its socket is up) before the key is pressed
                expect(bob_page.locator("#connection-state")).to_have_attribute(
                    "data-state", "connected", timeout=LIVE
                )
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
    quiet = make_room(owner=owner, name="Quiet desk")
    message_post(sender=owner, room=quiet, text="the book is flat")
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
            expect(page.locator("#message-list .message-item")).to_have_count(1)
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
            # and what the room showed is gone from the page, the composer shut
            expect(page.locator("#message-list .message-item")).to_have_count(0)
            expect(page.locator("#member-list li")).to_have_count(0)
            expect(page.locator("#composer-input")).to_be_disabled()
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
            expect(page.locator("#room-title")).to_have_text("@ Colm Byrne (@colm)")
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
            expect(page.locator("#room-title")).to_have_text("@ Colm Byrne (@colm)")
        finally:
            browser.close()

    # Then both exist with the right people, and no page error was seen
    assert errors == []
    room = Room.objects.get(name="Rates desk")
    assert list(room.memberships.values_list("user__username", flat=True)) == ["rita"]
    direct = Room.objects.get(kind=Room.Kind.DIRECT)
    assert sorted(direct.memberships.values_list("user__username", flat=True)) == ["colm", "rita"]
    assert colleague.pk in direct.memberships.values_list("user_id", flat=True)
