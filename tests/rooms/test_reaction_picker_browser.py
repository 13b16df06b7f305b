"""The reaction picker in a real browser, keyboard only: a message's "React" opens quick
reactions and a search of every emoji; picking reacts and puts focus back on "React";
Escape closes it; axe finds nothing to fix with it open.

The browser, the server and signing in are the shared ``chat_browser`` fixture
(tests/rooms/conftest.py, tests/support/browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from rooms.models import Reaction
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.axe import assert_accessible
from tests.support.browser import ARTIFACTS, LIVE, ChatBrowser, person

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_reacts_with_any_emoji_from_the_keyboard(
    chat_browser: ChatBrowser,
) -> None:
    # given Erin and Finn in a room, and a message of Finn's
    erin_user = make_user(username="erin", first_name="Erin", last_name="Shaw")
    finn_user = make_user(username="finn", first_name="Finn", last_name="Cole")
    room = make_room(owner=erin_user, members=(finn_user,), name="Launch desk")
    message = message_post(sender=finn_user, room=room, text="The new desk goes live at 9.")
    erin = person(erin_user)

    with chat_browser() as browser:
        page = browser.sign_in(erin, f"/rooms/?room={room.pk}")
        item = page.locator(f"#message-{message.pk}")
        react = item.get_by_role("button", name="React to the message from Finn Cole (@finn)")
        expect(react).to_have_attribute("aria-expanded", "false")

        # when she moves to the message and opens "React" from the keyboard
        page.keyboard.press("Alt+m")
        expect(item.locator("article")).to_be_focused()
        while not react.evaluate("(b) => b === document.activeElement"):
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")

        # then the picker opens on its quick reactions
        picker = page.get_by_role(
            "dialog", name="Add a reaction to the message from Finn Cole (@finn)"
        )
        expect(picker).to_be_visible()
        expect(react).to_have_attribute("aria-expanded", "true")
        quick = picker.get_by_role("group", name="Quick reactions").get_by_role("button")
        expect(quick).to_have_count(8)
        expect(picker.get_by_role("button", name="React with thumbs up")).to_be_focused()

        # when she searches for "rock", moves down to the rocket and picks it
        while not page.evaluate("document.activeElement.id.startsWith('reaction-search')"):
            page.keyboard.press("Tab")
        search = picker.get_by_role("combobox", name="Search emoji")
        expect(search).to_be_focused()
        page.keyboard.type("rock", delay=30)
        listbox = picker.get_by_role("listbox", name="Emoji")
        expect(listbox).to_be_visible(timeout=LIVE)
        rocket = listbox.get_by_role("option", name="rocket 🚀")
        expect(rocket).to_be_visible()
        expect(search).to_have_attribute("aria-expanded", "true")
        assert_accessible(page, "the reaction picker, searching")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-reaction-picker.png"))
        while rocket.get_attribute("aria-selected") != "true":
            page.keyboard.press("ArrowDown")
        expect(search).to_have_attribute("aria-activedescendant", rocket.get_attribute("id"))
        page.keyboard.press("Enter")

        # then the message has a rocket from her, the picker is gone and focus is back
        chips = item.locator(".msg-reactions .reaction")
        expect(chips.filter(has_text="🚀")).to_have_attribute("aria-pressed", "true", timeout=LIVE)
        expect(picker).to_be_hidden()
        expect(react).to_be_focused()
        expect(react).to_have_attribute("aria-expanded", "false")

        # when she opens it again and picks the red heart from the quick row
        page.keyboard.press("Enter")
        expect(picker.get_by_role("button", name="React with thumbs up")).to_be_focused()
        page.keyboard.press("Tab")
        expect(picker.get_by_role("button", name="React with red heart")).to_be_focused()
        page.keyboard.press("Enter")

        # then the heart is hers too, and focus is back on "React"
        expect(chips.filter(has_text="❤️")).to_have_attribute("aria-pressed", "true", timeout=LIVE)
        expect(react).to_be_focused()

        # and Escape closes it without reacting, focus back on "React"
        page.keyboard.press("Enter")
        expect(picker).to_be_visible()
        assert_accessible(page, "the reaction picker, open")
        page.emulate_media(color_scheme="dark")
        assert_accessible(page, "the reaction picker, open, dark")
        page.emulate_media(color_scheme="light")
        page.keyboard.press("Escape")
        expect(picker).to_be_hidden()
        expect(react).to_be_focused()
        expect(chips).to_have_count(2)

    assert browser.errors == []
    reacted = set(Reaction.objects.filter(message=message).values_list("emoji", "user__username"))
    assert reacted == {("🚀", "erin"), ("❤️", "erin")}
