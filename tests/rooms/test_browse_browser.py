"""Browsing, joining and muting rooms in a real browser: the Browse rooms page (axe-clean),
joining with its button, and a muted room's quiet badge and notifications, in every tab.

The browser's Notification is the recorder of ``test_mentions_browser``: what matters is
what the page asks it to show. Alice posts from her own browser: on the embedded default
the server's channel layer lives in its process, so a post must reach it there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import Locator, Page, expect, sync_playwright
from pytest_django import Settings

from rooms.models import Room
from rooms.services import direct_conversation_create
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.rooms.test_mentions_browser import NOTIFICATION_RECORDER, notifications
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import ARTIFACTS, LIVE, launch, person, running_server, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _production_hashers_and_fresh_limits(settings: Settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    cache.clear()


def room_row(page: Page, room: Room) -> Locator:
    return page.locator(f'#room-list li[data-room-id="{room.pk}"]')


def mute_room(page: Page, label: str) -> None:
    """Set the open room's notifications in its header (the script saves it in place)."""
    page.get_by_label("Notifications").select_option(label=label)
    page.locator("#room-mute-form").get_by_role("button", name="Set").click()


def test_a_colleague_browses_joins_and_mutes_rooms(tmp_path: Path, master_key_file: Path) -> None:
    # given Alice's listed room, a private one, a desk and a direct conversation with Colin
    alice_user = make_user(username="alice", first_name="Alice", last_name="Martin")
    colin_user = make_user(username="colin", first_name="Colin", last_name="Reyes")
    ideas = make_room(owner=alice_user, name="Macro ideas", visibility=Room.Visibility.LISTED)
    make_room(owner=alice_user, name="Secret M&A")
    desk = make_room(owner=alice_user, members=(colin_user,), name="Rates desk")
    direct = direct_conversation_create(actor=alice_user, participants=[colin_user])
    alice, colin = person(alice_user), person(colin_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            context.grant_permissions(["notifications"])
            context.add_init_script(NOTIFICATION_RECORDER)
            page = sign_in(context, base_url, colin, errors, f"/rooms/?room={desk.pk}")
            page.get_by_label("For mentions and direct messages").check()
            expect(page.locator("#notify-status")).to_contain_text("on")
            alice_page = sign_in(browser.new_context(), base_url, alice, errors)

            def post(room: Room, text: str) -> None:
                alice_page.goto(f"{base_url}/rooms/?room={room.pk}")
                expect(alice_page.locator("#connection-state")).to_have_attribute(
                    "data-state", "connected", timeout=LIVE
                )
                alice_page.locator("#composer-input").fill(text)
                alice_page.locator("#composer-input").press("Enter")
                expect(alice_page.locator("#message-list")).to_contain_text(
                    text.removeprefix("@colin "), timeout=LIVE
                )

            # Colin follows "Browse rooms": the listed room is offered, the private one not
            page.get_by_role("link", name="Browse rooms").click()
            expect(page).to_have_url(f"{base_url}/rooms/browse/")
            offered = page.get_by_role("list", name="Rooms you can join").get_by_role("listitem")
            expect(offered).to_have_count(1)
            expect(offered.first).to_contain_text("Macro ideas")
            expect(offered.first).to_contain_text("1 member")
            assert_accessible(page, "browse rooms")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browse-rooms.png"), full_page=True)

            # he joins it with its button and lands in it
            page.get_by_role("button", name="Join Macro ideas").click()
            expect(page).to_have_url(f"{base_url}/rooms/?room={ideas.pk}")
            expect(page.locator(".messages")).to_contain_text("You joined “Macro ideas”.")
            expect(room_row(page, ideas)).to_be_visible()
            expect(page.locator("#connection-state")).to_have_attribute(
                "data-state", "connected", timeout=LIVE
            )

            # he mutes it entirely; a second tab, on the desk, hears it at once
            other = context.new_page()
            other.goto(f"{base_url}/rooms/?room={desk.pk}")
            # (the recorder keeps the browser's permission per tab: this one has it too)
            other.evaluate("sessionStorage.setItem('test-permission', 'granted')")
            other.reload()
            expect(other.get_by_label("For mentions and direct messages")).to_be_checked()
            expect(other.locator("#connection-state")).to_have_attribute(
                "data-state", "connected", timeout=LIVE
            )
            mute_room(page, "Muted, mentions too")
            expect(page.locator("#notices")).to_contain_text("Room muted, mentions of you too.")
            expect(room_row(page, ideas)).to_have_attribute("data-mute", "all")
            expect(room_row(other, ideas)).to_have_attribute("data-mute", "all", timeout=LIVE)
            expect(room_row(other, ideas).locator(".mute-mark")).to_be_visible()
            assert_accessible(page, "chat with a muted room")

            # and mutes the direct conversation, mentions still notifying
            page.goto(f"{base_url}/rooms/?room={direct.pk}")
            mute_room(page, "Muted, except mentions")
            expect(room_row(page, direct)).to_have_attribute("data-mute", "messages")
            page.close()

            # a direct message in the muted conversation: counted, shown grey, not notified
            post(direct, "call me back")
            direct_badge = room_row(other, direct).locator(".badge")
            expect(direct_badge).to_have_attribute("data-unread", "1", timeout=LIVE)
            grey = direct_badge.evaluate("b => getComputedStyle(b).backgroundColor")
            assert grey == "rgb(91, 104, 120)"
            assert notifications(other) == []

            # a mention there still notifies
            post(direct, "@colin the 5y, now")
            expect(direct_badge).to_have_attribute("data-unread", "2", timeout=LIVE)
            assert [n["title"] for n in notifications(other)] == [
                "New mention from Alice Martin (@alice)"
            ]

            # a mention in the room muted entirely is marked, but neither notified nor told
            post(ideas, "@colin thoughts on the ECB?")
            ideas_row = room_row(other, ideas)
            expect(ideas_row.locator(".badge")).to_have_attribute("data-unread", "1", timeout=LIVE)
            expect(ideas_row.locator(".mention-badge")).to_be_visible()
            assert len(notifications(other)) == 1
            expect(other.locator("#notices")).not_to_contain_text("mentioned in Macro ideas")

            # an unmuted room is as before: red badge
            post(desk, "morning")
            desk_badge = room_row(other, desk).locator(".badge")
            expect(desk_badge).to_be_hidden()  # the open room: read at once
            assert room_row(other, desk).get_attribute("data-mute") == "off"
        finally:
            browser.close()

    assert errors == []
