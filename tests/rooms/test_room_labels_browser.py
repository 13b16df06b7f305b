"""What a room is called, in a real browser: a direct conversation is listed and titled by
the other person (their username as tooltip), live as it starts and as they rename
themselves; two rooms that come to share a name are told apart live; axe finds nothing.

The browser, the server and signing in are the shared ``chat_browser`` fixture
(tests/rooms/conftest.py, tests/support/browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.axe import assert_accessible
from tests.support.browser import ARTIFACTS, LIVE, ChatBrowser, person

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_conversation_is_called_by_the_other_person_and_look_alikes_are_told_apart(
    chat_browser: ChatBrowser,
) -> None:
    # given Max in two of Olivia's rooms, "Rates" and "FX desk", and Rita, who has none
    max_user = make_user(username="max", first_name="Max", last_name="Muster")
    rita_user = make_user(username="rita.r", first_name="Rita", last_name="Rossi")
    olivia = make_user(username="olivia", first_name="Olivia", last_name="Hart")
    rates = make_room(owner=olivia, members=(max_user,), name="Rates")
    fx = make_room(owner=olivia, members=(max_user,), name="FX desk")
    max_, rita, olivia_person = person(max_user), person(rita_user), person(olivia)

    with chat_browser() as browser:
        max_page = browser.sign_in(max_, f"/rooms/?room={rates.pk}")
        rita_page = browser.sign_in(rita)

        # when Rita starts a conversation with Max from the portal
        rita_page.get_by_role("link", name="New conversation").first.click()
        rita_page.get_by_label("Find people").fill("max")
        rita_page.get_by_role("button", name="Search").click()
        rita_page.get_by_label("Max Muster").check()
        rita_page.get_by_role("button", name="Start conversation").click()

        # then her page calls it by Max, never by herself or the stored "max, rita.r"
        title = rita_page.locator("#room-title")
        expect(title).to_have_text("@ Max Muster (@max)")
        expect(title).to_have_attribute("title", "@max")
        expect(rita_page).to_have_title("Max Muster (@max) · SafeChat")
        expect(rita_page.locator("#room-list")).not_to_contain_text("rita.r")
        expect(rita_page.locator("#room-list")).not_to_contain_text("Rossi")
        direct_id = int(rita_page.url.split("room=")[1].split("&")[0])

        # and Max's list gains it live, called by Rita, with her username as tooltip
        mine = max_page.locator(f'#room-list li[data-room-id="{direct_id}"]')
        expect(mine.locator(".room-name")).to_have_text("Rita Rossi", timeout=LIVE)
        expect(mine.locator("a")).to_have_attribute("title", "@rita.r")
        expect(mine).to_have_attribute("data-label", "Rita Rossi (@rita.r)")
        expect(max_page.locator("#notices")).to_contain_text(
            "Rita Rossi (@rita.r) started a conversation with you."
        )
        expect(max_page.locator("#room-list")).not_to_contain_text("max, rita.r")

        # when Max opens it, the heading and the window say Rita too
        mine.locator("a").click()
        expect(max_page.locator("#room-title")).to_have_text("@ Rita Rossi (@rita.r)")
        expect(max_page.locator("#room-title")).to_have_attribute("title", "@rita.r")
        expect(max_page).to_have_title("Rita Rossi (@rita.r) · SafeChat")
        expect(max_page.locator("#connection-state")).to_have_attribute(
            "data-state", "connected", timeout=LIVE
        )

        # when Rita changes her name on her profile
        rita_page.goto(f"{browser.base_url}/accounts/profile/")
        rita_page.get_by_label("Last name").fill("Rossi-Bianchi")
        rita_page.get_by_role("button", name="Save").click()
        expect(rita_page.locator(".messages")).to_contain_text("Your name is saved")

        # then Max's list, heading and window follow at once
        expect(mine.locator(".room-name")).to_have_text("Rita Rossi-Bianchi", timeout=LIVE)
        expect(max_page.locator("#room-title")).to_have_text("@ Rita Rossi-Bianchi (@rita.r)")
        expect(max_page).to_have_title("Rita Rossi-Bianchi (@rita.r) · SafeChat")
        composer = max_page.get_by_role("textbox", name="Message Rita Rossi-Bianchi")
        expect(composer).to_have_attribute("placeholder", "Message Rita Rossi-Bianchi (@rita.r)")

        # when Max goes back to "Rates", and Olivia renames "FX desk" to "Rates" as well
        max_page.locator(f'#room-list li[data-room-id="{rates.pk}"] a').click()
        expect(max_page.locator("#room-title")).to_have_text("# Rates")
        expect(max_page.locator("#connection-state")).to_have_attribute(
            "data-state", "connected", timeout=LIVE
        )
        olivia_page = browser.sign_in(olivia_person, f"/rooms/?room={fx.pk}")
        olivia_page.locator("summary", has_text="Room settings").click()
        olivia_page.get_by_label("Name", exact=True).fill("Rates")
        olivia_page.get_by_role("button", name="Save settings").click()
        expect(olivia_page.locator(".messages")).to_contain_text("Room settings saved.")

        # then Max's two "Rates" are each told apart by their number, live
        for room in (rates, fx):
            entry = max_page.locator(f'#room-list li[data-room-id="{room.pk}"]')
            expect(entry.locator(".room-qualifier")).to_have_text(f"(#{room.pk})", timeout=LIVE)
            expect(entry).to_have_attribute("data-label", f"Rates (#{room.pk})")
        names = max_page.locator("#room-list .room-name")
        expect(names).to_have_text(["Rates", "Rates", "Rita Rossi-Bianchi"])
        # and the open one's heading and window gain its number as well
        expect(max_page.locator("#room-title")).to_have_text(f"# Rates (#{rates.pk})")
        expect(max_page).to_have_title(f"Rates (#{rates.pk}) · SafeChat")
        assert_accessible(max_page, "the room list with look-alike rooms told apart")
        ARTIFACTS.mkdir(exist_ok=True)
        max_page.screenshot(path=str(ARTIFACTS / "portal-room-labels.png"))

        # and opening the other, its heading and window carry its number
        max_page.locator(f'#room-list li[data-room-id="{fx.pk}"] a').click()
        expect(max_page.locator("#room-title")).to_have_text(f"# Rates (#{fx.pk})")
        expect(max_page).to_have_title(f"Rates (#{fx.pk}) · SafeChat")
        assert_accessible(max_page, "a room titled with its qualifier")

    assert browser.errors == []
