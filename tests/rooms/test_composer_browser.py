"""The chat page in Chromium, for what a reviewer found: an over-long message refused in
the composer with its reason (never "Not confirmed" and a retry that would fail), a
conversation an information barrier separates (a composer that says why it cannot send),
the open archived room's contrast in both themes, and the profile card a sender's name
opens, by mouse and by keyboard.

The browser, the server and signing in are the shared ``chat_browser`` fixture
(tests/rooms/conftest.py, tests/support/browser.py).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.roles import Role
from rooms.models import Message
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    group_create,
    group_members_set,
    message_post,
    room_archive,
)
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room
from tests.support.axe import assert_accessible
from tests.support.browser import ARTIFACTS, LIVE, ChatBrowser, person

pytestmark = pytest.mark.django_db(transaction=True)

# The WCAG 2.x contrast ratio of an element's text against the first opaque background
# behind it (itself included).
TEXT_CONTRAST = """(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el, behind = null;
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { behind = c; break; }
    node = node.parentElement;
  }
  behind = behind ?? [255, 255, 255];
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(behind)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_an_over_long_message_is_refused_in_the_composer_with_its_reason(
    chat_browser: ChatBrowser,
) -> None:
    # given a member of a room
    owner = make_user(username="dana")
    room = make_room(owner=owner, name="Repo desk")
    dana = person(owner)

    with chat_browser() as browser:
        page = browser.sign_in(dana, f"/rooms/?room={room.pk}")
        composer = page.locator("#composer-input")
        count = page.locator("#composer-count")

        # when she types near the limit, the counter shows how much is used
        composer.fill("x" * 13_000)
        expect(count).to_be_visible()
        expect(count).to_have_text("12.7 of 16 KiB")
        expect(composer).not_to_have_attribute("aria-invalid", "true")

        # when she pastes a 70,000-character text, the counter says it is too long
        composer.fill("x" * 70_000)
        expect(count).to_have_text(
            "Too long: 68.4 KiB of 16 KiB. Shorten it, or share it as a file."
        )
        expect(composer).to_have_attribute("aria-invalid", "true")

        # and when she presses Enter, nothing is sent: the reason is shown and announced,
        # the text stays in the box, and no pending message offers "Send again"
        composer.press("Enter")
        error = page.locator("#composer-error")
        expect(error).to_be_visible()
        expect(error).to_have_text(
            "This message is too long (68.4 KiB): a message may be at most 16 KiB of text; "
            "shorten it, or share it as a file."
        )
        expect(error).to_have_attribute("role", "alert")
        expect(page.locator("#message-list .message-item.pending")).to_have_count(0)
        expect(page.get_by_role("button", name="Send again")).to_have_count(0)
        expect(page.locator("#message-list")).not_to_contain_text("Not confirmed")
        expect(page.locator("#connection-state")).to_have_attribute("data-state", "connected")
        assert len(composer.input_value()) == 70_000
        assert_accessible(page, "the composer with a message too long")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-message-too-long.png"))

        # when she shortens it, it goes as any message does
        composer.fill("the short version")
        expect(count).to_be_hidden()
        expect(composer).not_to_have_attribute("aria-invalid", "true")
        composer.press("Enter")
        expect(page.locator("#message-list .message-item[data-message-id]")).to_have_count(
            1, timeout=LIVE
        )

    assert browser.errors == []
    assert list(Message.objects.values_list("room_id", flat=True)) == [room.pk]


def test_a_conversation_behind_a_barrier_shows_a_composer_that_cannot_send_and_why(
    chat_browser: ChatBrowser,
) -> None:
    # given a direct conversation between two people a barrier has since separated
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    banker, analyst = make_user(username="banker"), make_user(username="analyst")
    direct = direct_conversation_create(actor=banker, participants=[analyst])
    message_post(sender=analyst, room=direct, text="the numbers are in")
    deals = group_create(actor=admin, name="deals")
    research = group_create(actor=admin, name="research")
    group_members_set(actor=admin, group=deals, add=[banker])
    group_members_set(actor=admin, group=research, add=[analyst])
    barrier_create(actor=admin, group_a=deals, group_b=research)
    banker_person = person(banker)

    with chat_browser() as browser:
        # when the banker opens it
        page = browser.sign_in(banker_person, f"/rooms/?room={direct.pk}")

        # then the history reads, and the composer is disabled with its reason, linked
        expect(page.locator("#message-list")).to_contain_text("the numbers are in")
        box = page.get_by_role("textbox", name=re.compile("^Message"))
        expect(box).to_be_disabled()
        expect(box).to_have_accessible_description(
            re.compile(r"^An information barrier separates you from someone in this conversation")
        )
        expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
        expect(page.locator("#composer")).to_have_count(0)
        assert_accessible(page, "a conversation behind a barrier")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-composer-behind-a-barrier.png"))

    assert browser.errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_open_archived_room_keeps_its_contrast(chat_browser: ChatBrowser, scheme: str) -> None:
    # given an archived room, open
    owner = make_user(username="olivia")
    room = make_room(owner=owner, name="Old deals")
    room_archive(actor=owner, room=room)
    olivia = person(owner)

    with chat_browser() as browser:
        page = browser.sign_in(olivia, f"/rooms/?room={room.pk}", color_scheme=scheme)

        # then its entry in the list (open and archived) reads at AA contrast, and axe agrees
        entry = page.locator(f'#room-list li.archived[data-room-id="{room.pk}"] a')
        expect(entry).to_have_attribute("aria-current", "page")
        for part in (entry, entry.locator(".room-name"), entry.locator(".room-kind")):
            ratio = part.evaluate(TEXT_CONTRAST)
            assert ratio >= 4.5, f"{scheme}: {ratio:.2f}:1"
        assert_accessible(page, f"an open archived room ({scheme})")

    assert browser.errors == []


def open_card_by_keyboard(page: Page) -> None:
    """Alt+M reaches the newest message; Tab its first control, the sender's name."""
    page.locator("#composer-input").focus()
    page.keyboard.press("Alt+m")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_class(re.compile("msg-sender-button"))
    page.keyboard.press("Enter")


def test_a_senders_name_opens_the_profile_card_by_mouse_and_by_keyboard(
    chat_browser: ChatBrowser,
) -> None:
    # given Bob Smith's message in Olivia's room
    olivia = make_user(username="olivia", first_name="Olivia", last_name="Hart")
    bob = make_user(username="bob.smith", first_name="Bob", last_name="Smith")
    room = make_room(owner=olivia, members=(bob,), name="Rates")
    message_post(sender=bob, room=room, text="Filled at 99.75")
    olivia_person = person(olivia)

    with chat_browser() as browser:
        page = browser.sign_in(olivia_person, f"/rooms/?room={room.pk}")
        name = page.locator("#message-list .msg-sender-button").first
        expect(name).to_have_attribute("aria-haspopup", "dialog")

        # when she clicks his name, his card opens under the message's header
        name.click()
        card = page.get_by_role("dialog", name="Bob Smith")
        expect(card).to_be_visible()
        expect(card).to_contain_text("@bob.smith")
        expect(card).to_contain_text("Member in this room")
        expect(name).to_have_attribute("aria-expanded", "true")
        expect(card.get_by_role("button", name="Message Bob Smith")).to_be_focused()
        assert_accessible(page, "a profile card open")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-profile-card.png"))

        # and Escape closes it, the focus back on the name
        page.keyboard.press("Escape")
        expect(card).to_have_count(0)
        expect(name).to_be_focused()
        expect(name).to_have_attribute("aria-expanded", "false")

        # when she reaches the name by keyboard alone and presses Enter, it opens again
        open_card_by_keyboard(page)
        expect(page.get_by_role("dialog", name="Bob Smith")).to_be_visible()

        # and "Message" starts a direct conversation with him
        page.get_by_role("dialog", name="Bob Smith").get_by_role(
            "button", name="Message Bob Smith"
        ).press("Enter")
        expect(page.locator("#room-title")).to_have_text("@ Bob Smith")

    assert browser.errors == []
