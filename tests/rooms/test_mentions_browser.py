"""Mentions in a real browser: picking a colleague from the composer's suggestions with
the keyboard, the colleague's badge, highlighted mention, Mentions page and desktop
notification (opt-in, without the text unless asked).

The browser's Notification is replaced by a recorder (an init script): headless Chromium
shows nothing, and what matters is what the page asks it to show.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, expect, sync_playwright
from pytest_django import Settings

from rooms.services import direct_conversation_create
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    launch,
    person,
    running_server,
    sign_in,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Records each notification the page creates; asks nothing until the page asks. The
# permission, once given, lasts across page loads, as a browser's does.
NOTIFICATION_RECORDER = """
window.__notifications = [];
window.__permissionAsked = 0;
class RecordedNotification {
  constructor(title, options = {}) {
    window.__notifications.push({ title, body: options.body ?? null });
  }
  close() {}
  static get permission() {
    return sessionStorage.getItem("test-permission") ?? "default";
  }
  static requestPermission() {
    window.__permissionAsked += 1;
    sessionStorage.setItem("test-permission", "granted");
    return Promise.resolve("granted");
  }
}
window.Notification = RecordedNotification;
"""


@pytest.fixture(autouse=True)
def _production_hashers_and_fresh_limits(settings: Settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    cache.clear()


def notifications(page: Page) -> list[dict[str, str | None]]:
    found: list[dict[str, str | None]] = page.evaluate("window.__notifications")
    return found


def test_a_colleague_is_mentioned_from_the_keyboard_and_sees_it_everywhere(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given Alice, and two colleagues whose names start alike, in two rooms
    alice_user = make_user(username="alice", first_name="Alice", last_name="Martin")
    colin_user = make_user(username="colin", first_name="Colin", last_name="Reyes")
    cora_user = make_user(username="cora", first_name="Cora", last_name="Diaz")
    rates = make_room(owner=alice_user, members=(colin_user, cora_user), name="Rates desk")
    fx = make_room(owner=alice_user, members=(colin_user,), name="FX desk")
    direct = direct_conversation_create(actor=alice_user, participants=[colin_user])
    alice, colin = person(alice_user), person(colin_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            alice_context = browser.new_context(
                viewport={"width": 1280, "height": 800}, **AXE_CONTEXT
            )
            colin_context = browser.new_context(
                viewport={"width": 1280, "height": 800}, **AXE_CONTEXT
            )
            colin_context.grant_permissions(["notifications"])
            colin_context.add_init_script(NOTIFICATION_RECORDER)
            alice_page = sign_in(alice_context, base_url, alice, errors, f"/rooms/?room={rates.pk}")
            colin_page = sign_in(colin_context, base_url, colin, errors, f"/rooms/?room={fx.pk}")
            for page in (alice_page, colin_page):
                expect(page.locator("#connection-state")).to_have_attribute(
                    "data-state", "connected", timeout=LIVE
                )

            # Colin turns desktop notifications on: the browser is asked on that click only
            assert colin_page.evaluate("window.__permissionAsked") == 0
            colin_page.get_by_label("For mentions and direct messages").check()
            expect(colin_page.locator("#notify-status")).to_contain_text("on")
            assert colin_page.evaluate("window.__permissionAsked") == 1

            # Alice types "@co": both colleagues are offered, by name, and announced
            composer = alice_page.locator("#composer-input")
            # (a textarea: WAI-ARIA 1.2 textbox with a listbox popup, ARIA in HTML)
            expect(composer).to_have_attribute("aria-haspopup", "listbox")
            expect(composer).to_have_attribute("aria-autocomplete", "list")
            expect(composer).to_have_attribute("aria-controls", "mention-listbox")
            composer.press_sequentially("@co", delay=20)
            options = alice_page.get_by_role("listbox", name="People to mention").get_by_role(
                "option"
            )
            expect(options).to_have_count(2)
            expect(options.first).to_contain_text("Colin Reyes")
            expect(options.last).to_contain_text("Cora Diaz")
            expect(alice_page.locator("#live-announcer")).to_contain_text("2 people to mention")
            expect(composer).to_have_attribute("aria-activedescendant", "mention-option-0")
            assert_accessible(alice_page, "chat with mention suggestions")
            # Down to Cora, Up back to Colin, Enter picks him (and does not send)
            composer.press("ArrowDown")
            expect(options.last).to_have_attribute("aria-selected", "true")
            composer.press("ArrowUp")
            expect(options.first).to_have_attribute("aria-selected", "true")
            composer.press("Enter")
            expect(composer).to_have_value("@colin ")
            expect(options).to_have_count(0)
            composer.press_sequentially("can you price the 5y?", delay=5)
            composer.press("Enter")
            expect(composer).to_have_value("")

            # Colin, in another room, sees the mention badge and a notification without text
            rates_item = colin_page.locator(f'#room-list li[data-room-id="{rates.pk}"]')
            expect(rates_item.locator(".mention-badge")).to_be_visible(timeout=LIVE)
            expect(colin_page.locator("#notices")).to_contain_text(
                "You were mentioned in Rates desk"
            )
            assert notifications(colin_page) == [
                {"title": "New mention in #Rates desk from Alice Martin (@alice)", "body": None}
            ]

            # A message that mentions nobody notifies nobody
            composer.fill("Morning all")
            composer.press("Enter")
            expect(rates_item.locator(".badge")).to_have_attribute("data-unread", "2", timeout=LIVE)
            assert len(notifications(colin_page)) == 1

            # With "Show the message text" ticked, the text comes (as shown, not Markdown)
            colin_page.get_by_label("Show the message text").check()
            composer.fill("@colin the level is **101.5**")
            composer.press("Enter")
            expect(rates_item.locator(".badge")).to_have_attribute("data-unread", "3", timeout=LIVE)
            assert notifications(colin_page)[-1] == {
                "title": "New mention in #Rates desk from Alice Martin (@alice)",
                "body": "@Colin Reyes (colin) the level is 101.5",
            }

            # A direct message notifies too, mentioning nobody
            colin_page.get_by_label("Show the message text").uncheck()
            alice_direct = alice_context.new_page()
            alice_direct.goto(f"{base_url}/rooms/?room={direct.pk}")
            alice_direct.locator("#composer-input").fill("call me back")
            alice_direct.locator("#composer-input").press("Enter")
            direct_item = colin_page.locator(f'#room-list li[data-room-id="{direct.pk}"]')
            expect(direct_item.locator(".badge")).to_have_attribute(
                "data-unread", "1", timeout=LIVE
            )
            assert notifications(colin_page)[-1] == {
                "title": "New direct message from Alice Martin (@alice)",
                "body": None,
            }

            # The choice is remembered by this browser
            colin_page.reload()
            expect(colin_page.get_by_label("For mentions and direct messages")).to_be_checked()
            expect(colin_page.get_by_label("Show the message text")).not_to_be_checked()

            # In the room, his mentions stand out; one arriving live too
            colin_page.locator(f'#room-list li[data-room-id="{rates.pk}"] a').click()
            listed = colin_page.locator("#message-list")
            mine = listed.locator(".mention-me")
            expect(mine).to_have_count(2)
            expect(mine.first).to_have_text("@Colin Reyes (colin)")
            expect(listed.locator("article.mentions-me")).to_have_count(2)
            sender = listed.locator(".message-item").first.locator(".msg-meta")
            expect(sender).to_contain_text("Alice Martin")
            expect(sender).to_contain_text("@alice")
            expect(colin_page.locator("#connection-state")).to_have_attribute(
                "data-state", "connected", timeout=LIVE
            )
            composer.fill("@Colin thanks")
            composer.press("Enter")
            expect(mine).to_have_count(3, timeout=LIVE)
            expect(listed.locator("article.mentions-me")).to_have_count(3)
            member = colin_page.locator(f'#member-list li[data-user-id="{alice_user.pk}"]')
            expect(member).to_contain_text("Alice Martin")

            # The Mentions page lists them, newest first, and passes axe
            colin_page.goto(f"{base_url}/rooms/mentions/")
            items = colin_page.locator(".mention-item")
            expect(items).to_have_count(3)
            expect(items.first).to_contain_text("thanks")
            expect(items.last).to_contain_text("can you price the 5y?")
            expect(items.first.get_by_role("link")).to_have_attribute(
                "href", re.compile(rf"^/rooms/\?room={rates.pk}#message-\d+$")
            )
            assert_accessible(colin_page, "mentions")
            ARTIFACTS.mkdir(exist_ok=True)
            colin_page.screenshot(path=str(ARTIFACTS / "mentions.png"), full_page=True)
        finally:
            browser.close()

    assert errors == []
