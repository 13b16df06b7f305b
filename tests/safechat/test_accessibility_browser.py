"""Accessibility (WCAG 2.1 AA) in a real browser: axe-core on every page a person uses,
the portal's own and the admin's, light and dark; reflow at 320 px and at 200 % zoom;
the chat's keyboard and focus behaviour. A screenshot of each main page is saved to
test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from accounts.services import invitation_create
from audit.models import AuditEvent
from rooms.models import Message, Room
from rooms.services import message_post, reaction_toggle
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    PASSWORD,
    Person,
    launch,
    person,
    running_server,
    sign_in,
    watch_for_errors,
)

pytestmark = pytest.mark.django_db(transaction=True)

LONG_TOPIC = (
    "EUR rates desk: fills, axes, run-throughs and the end-of-day marks for the whole "
    "curve, including 2y5y10y30y butterflies and cross-currency basis"
)


@pytest.fixture(autouse=True)
def _production_hashers_and_fresh_limits(settings: Settings) -> None:
    # The server verifies passwords with the production hasher list (Argon2).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    cache.clear()


def busy_room(owner: User, other: User) -> Room:
    """A room with a long topic, a thread, a reaction, a message with a heading and a
    mention of ``owner``."""
    room = make_room(owner=owner, members=(other,), name="Rates desk")
    Room.objects.filter(pk=room.pk).update(topic=LONG_TOPIC)
    opener = message_post(sender=other, room=room, text="Morning. Who covers the 10y?")
    message_post(sender=owner, room=room, text="I do. Axes in `#rates-axes`.", parent_id=opener.pk)
    quote = message_post(sender=other, room=room, text="# Client\nAsking for **5m 2y** at mid.")
    reaction_toggle(actor=owner, message=quote, emoji="👍")
    message_post(sender=owner, room=room, text="Filled at 99.5")
    message_post(sender=other, room=room, text=f"@{owner.username} can you check the 5y?")
    return room


def check(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    assert_accessible(page, name)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"a11y-{name}.png"), full_page=True)


def sign_in_checked(page: Page, base_url: str, who: Person, prefix: str) -> None:
    """Sign in through the real pages, with axe on the sign-in and second-factor pages."""
    page.goto(f"{base_url}/accounts/sign-in/?next=/rooms/")
    check(page, f"{prefix}sign-in")
    page.get_by_label("Username").fill(who.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/accounts/second-factor/"))
    check(page, f"{prefix}second-factor")
    page.get_by_label("Code").fill(who.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/rooms/"))


def test_axe_finds_no_a_or_aa_violation_on_any_page_a_person_uses(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a security admin who also runs a busy room, a compliance officer, and a
    # newcomer who has not enrolled a second factor yet
    sam_user = grant_role(make_room_admin(username="sam", first_name="Sam", last_name="Ng"),
                          Role.SECURITY_ADMIN)  # fmt: skip
    bob_user = make_user(username="bob")
    cora_user = grant_role(make_user(username="cora"), Role.COMPLIANCE_OFFICER)
    make_user(username="nina")
    room = busy_room(sam_user, bob_user)
    make_room(owner=bob_user, name="Macro ideas", visibility=Room.Visibility.LISTED)
    invitation_create(actor=sam_user, email="new.colleague@bank.example", role=Role.ROOM_ADMIN)
    sam, cora = person(sam_user), person(cora_user)
    event_id = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            # when each page is opened, axe-core runs on it
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = context.new_page()
            watch_for_errors(page, errors)
            sign_in_checked(page, base_url, sam, "")
            for name, path in [
                ("chat", f"/rooms/?room={room.pk}"),
                ("room-new", "/rooms/new/"),
                ("conversation-new", "/rooms/conversations/new/?q=bob"),
                ("people", "/rooms/people/"),
                ("browse", "/rooms/browse/"),
                ("mentions", "/rooms/mentions/"),
                ("profile", "/accounts/profile/"),
                ("factors", "/accounts/factors/"),
                ("sessions", "/accounts/sessions/"),
                ("tokens", "/accounts/tokens/"),
                ("password-change", "/accounts/password/"),
                ("admin-users", "/accounts/admin/users/"),
                ("django-admin-index", "/admin/"),
                ("django-admin-users", "/admin/accounts/user/"),
                ("django-admin-user", f"/admin/accounts/user/{bob_user.pk}/change/"),
            ]:
                page.goto(f"{base_url}{path}")
                check(page, name)
            context.close()

            # the compliance officer's admin pages
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = context.new_page()
            watch_for_errors(page, errors)
            sign_in_checked(page, base_url, cora, "compliance-")
            for name, path in [
                ("compliance-admin-index", "/admin/"),
                ("compliance-audit-events", "/admin/audit/auditevent/"),
                ("compliance-audit-event", f"/admin/audit/auditevent/{event_id}/change/"),
            ]:
                page.goto(f"{base_url}{path}")
                check(page, name)
            context.close()

            # the newcomer's enrolment page
            context = browser.new_context(**AXE_CONTEXT)
            page = context.new_page()
            watch_for_errors(page, errors)
            page.goto(f"{base_url}/accounts/sign-in/?next=/rooms/")
            page.get_by_label("Username").fill("nina")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Continue").click()
            expect(page).to_have_url(re.compile(r"/accounts/enrol/"))
            check(page, "enrol")
        finally:
            browser.close()

    # then no page had a violation (asserted above) nor a script error
    assert errors == []


NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.mark.parametrize(
    ("viewport", "scale", "name"),
    [
        (ViewportSize(width=320, height=640), 1, "320px"),
        (ViewportSize(width=640, height=400), 2, "zoom-200"),
    ],
)
def test_the_portal_reflows_at_320_px_and_at_200_percent_zoom(
    tmp_path: Path, master_key_file: Path, viewport: ViewportSize, scale: int, name: str
) -> None:
    # given a security admin in a room with a long topic (1280 px at 200 % is 640 px)
    sam_user = grant_role(make_room_admin(username="sam"), Role.SECURITY_ADMIN)
    room = busy_room(sam_user, make_user(username="bob"))
    # and a colleague whose first and last names are one long word each (64, the most)
    make_user(username="wolfgang", first_name="W" * 64, last_name="Q" * 64)
    # and a pending invitation on the Users page, its Revoke button named for screen readers
    invitation_create(
        actor=sam_user, email="a.rather.long.address@bank.example", role=Role.COMPLIANCE_OFFICER
    )
    sam = person(sam_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport=viewport, device_scale_factor=scale)
            page = sign_in(context, base_url, sam, errors, f"/rooms/?room={room.pk}")

            # when the chat shows, then nothing scrolls sideways, the topic wraps and
            # Send is on screen
            assert page.evaluate(NO_SIDEWAYS_SCROLL)
            topic = page.locator("#room-topic").bounding_box()
            assert topic is not None
            assert topic["x"] + topic["width"] <= viewport["width"]
            send = page.get_by_role("button", name="Send")
            send.scroll_into_view_if_needed()
            box = send.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= viewport["width"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"reflow-{name}-chat.png"), full_page=True)

            # and the pages that list people wrap a long one-word name
            for path in ("/rooms/conversations/new/?q=wolfgang", "/rooms/people/?q=wolfgang"):
                page.goto(f"{base_url}{path}")
                expect(page.get_by_text("W" * 64, exact=False).first).to_be_visible()
                assert page.evaluate(NO_SIDEWAYS_SCROLL), path

            # and the tables of factors, sessions, tokens and users scroll in a labelled
            # region of their own, not the page
            for path in ("factors", "sessions", "tokens", "admin/users"):
                page.goto(f"{base_url}/accounts/{path}/")
                assert page.evaluate(NO_SIDEWAYS_SCROLL), path
                region = page.get_by_role("region").first
                expect(region).to_have_attribute("tabindex", "0")
                assert region.get_attribute("aria-label")
                page.screenshot(
                    path=str(ARTIFACTS / f"reflow-{name}-{path.replace('/', '-')}.png"),
                    full_page=True,
                )
        finally:
            browser.close()

    assert errors == []


# What pushes the page past its width: the elements whose right edge is beyond it.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .map((el) => `${el.tagName.toLowerCase()}.${el.className}`)"""


def test_the_longest_usernames_and_room_names_wrap_at_320_px(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a person and a colleague with usernames of 150 characters, one word each (the
    # most a username may have), in a room whose name is one word of 120 (the most), with a
    # message that mentions the person
    me_user = make_room_admin(username="m" * 150)
    other = make_user(username="c" * 150)
    room = make_room(owner=me_user, members=(other,), name="R" * 120)
    message_post(sender=other, room=room, text=f"@{me_user.username} the 5y, please")
    me = person(me_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport=ViewportSize(width=320, height=640))
            page = sign_in(context, base_url, me, errors, f"/rooms/?room={room.pk}")
            expect(page.locator(".msg").first).to_be_visible()

            # when each page that shows them is opened at 320 px, then nothing pushes the
            # page sideways (WCAG 1.4.10): the names wrap
            assert page.evaluate(OVERFLOWING) == [], "chat"
            for path in ("/rooms/mentions/", "/rooms/people/", "/accounts/profile/"):
                page.goto(f"{base_url}{path}")
                assert page.evaluate(OVERFLOWING) == [], path
        finally:
            browser.close()

    assert errors == []


# The contrast ratio (WCAG 2.x) of an element's border against the colour behind it.
BORDER_CONTRAST = """(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el.parentElement, behind = null;
  while (node) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0) { behind = c; break; }
    node = node.parentElement;
  }
  behind = behind ?? [255, 255, 255];
  const [a, b] = [lum(rgb(getComputedStyle(el).borderTopColor)), lum(behind)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_the_chat_works_by_keyboard_keeps_focus_and_announces_plain_text(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a room with a thread, a reaction by two people, a message from three days
    # ago, a long message and a message with a heading
    sam_user = grant_role(make_room_admin(username="sam"), Role.SECURITY_ADMIN)
    bob_user = make_user(username="bob")
    room = busy_room(sam_user, bob_user)
    client = Message.objects.filter(room=room).order_by("seq")[2]
    reaction_toggle(actor=bob_user, message=client, emoji="👍")
    Message.objects.filter(pk=Message.objects.filter(room=room).order_by("seq")[0].pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    long_text = "\n\n".join(f"Line {i} of the run" for i in range(40))
    message_post(sender=bob_user, room=room, text=long_text)
    message_post(sender=sam_user, room=room, text="Filled at 99.75")
    sam, bob = person(sam_user), person(bob_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = sign_in(context, base_url, sam, errors, f"/rooms/?room={room.pk}")
            messages = page.locator("#message-list")
            composer = page.locator("#composer-input")

            # Days are separated, times are relative with the full date as tooltip
            separators = messages.locator(".day-separator")
            expect(separators).to_have_count(2)
            expect(separators.last).to_have_text("Today")
            newest_time = messages.locator("time").last
            expect(newest_time).to_have_text(re.compile(r"just now|\d+ min ago"))
            assert re.search(r"\d{4}", newest_time.get_attribute("title") or "")
            # headings in a message are body size
            heading_size = messages.locator(".msg-body h1").evaluate(
                "(h) => getComputedStyle(h).fontSize === getComputedStyle(h.parentElement).fontSize"
            )
            assert heading_size

            # From the composer, Alt+M goes to the newest message, arrows move between
            composer.focus()
            page.keyboard.press("Alt+m")
            focused = page.locator(":focus")
            expect(focused).to_contain_text("Filled at 99.75")
            page.keyboard.press("ArrowUp")
            expect(page.locator(":focus")).to_contain_text("Line 39 of the run")
            page.keyboard.press("Home")
            expect(page.locator(":focus")).to_contain_text("Morning. Who covers the 10y?")
            page.keyboard.press("ArrowDown")  # the reply, in reading order
            expect(page.locator(":focus")).to_contain_text("I do.")
            page.keyboard.press("Alt+c")
            expect(composer).to_be_focused()
            # and Shift+Tab from the composer reaches a message in a few presses
            presses = 0
            while presses < 6 and not page.evaluate(
                "document.activeElement.matches('article.msg')"
            ):
                page.keyboard.press("Shift+Tab")
                presses += 1
            # (the message last moved to is the list's one tab stop)
            expect(page.locator(":focus")).to_contain_text("I do.")
            assert presses <= 6
            more = page.get_by_role("button", name="Show more")
            expect(more).to_have_attribute("aria-expanded", "false")
            more.click()  # and the long message, collapsed, opens
            expect(page.get_by_role("button", name="Show less")).to_have_attribute(
                "aria-expanded", "true"
            )

            # Toggling a reaction keeps focus on its button
            chip = messages.locator(".message-item", has_text="Asking for").locator(".reaction")
            chip.focus()
            expect(chip).to_have_attribute("aria-pressed", "true")
            page.keyboard.press("Enter")
            expect(chip).to_have_attribute("aria-pressed", "false", timeout=LIVE)
            expect(chip).to_be_focused()
            page.keyboard.press("Enter")
            expect(chip).to_have_attribute("aria-pressed", "true", timeout=LIVE)
            expect(chip).to_be_focused()

            # Controls' borders reach 3:1 against what is behind them
            for control in (composer, chip, page.locator("#add-username")):
                assert control.evaluate(BORDER_CONTRAST) >= 3, control

            # Away and offline differ by shape, not colour alone
            shapes = page.locator("#member-list .presence").first.evaluate(
                """(dot) => ["away", "offline"].map((state) => {
                  const probe = dot.cloneNode(); probe.dataset.state = state;
                  dot.after(probe); const s = getComputedStyle(probe);
                  const shape = [s.backgroundImage, s.borderStyle].join(" ");
                  probe.remove(); return shape;
                })"""
            )
            assert shapes[0] != shapes[1]

            # A new message is announced as the text shown, not its Markdown, by the
            # sender's label (bob has no name: "@bob")
            bob_context = browser.new_context()
            bob_page = sign_in(bob_context, base_url, bob, errors, f"/rooms/?room={room.pk}")
            bob_page.locator("#composer-input").fill("**Bold** move on `10y`")
            bob_page.locator("#composer-input").press("Enter")
            expect(page.locator("#live-announcer")).to_have_text(
                "@bob: Bold move on 10y", timeout=LIVE
            )

            # Deleting a message moves focus to the one before it, visibly, and says so
            newest = messages.locator(".message-item", has_text="Filled at 99.75")
            newest.locator("article").focus()
            page.once("dialog", lambda dialog: dialog.accept())
            newest.get_by_role("button", name=re.compile("^Delete")).click()
            expect(newest).to_have_count(0, timeout=LIVE)
            expect(page.locator(":focus")).to_contain_text("Bold move")
            assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
            expect(page.locator("#live-announcer")).to_have_text("Message deleted.")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "chat-keyboard.png"))
        finally:
            browser.close()

    assert errors == []


def test_dark_mode_renders_and_axe_finds_nothing_in_it(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a person whose system prefers dark
    sam_user = grant_role(make_room_admin(username="sam"), Role.SECURITY_ADMIN)
    room = busy_room(sam_user, make_user(username="bob"))
    # and a colleague whose first and last names are one long word each (64, the most)
    make_user(username="wolfgang", first_name="W" * 64, last_name="Q" * 64)
    # and a pending invitation on the Users page, its Revoke button named for screen readers
    invitation_create(
        actor=sam_user, email="a.rather.long.address@bank.example", role=Role.COMPLIANCE_OFFICER
    )
    sam = person(sam_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 800}, color_scheme="dark", **AXE_CONTEXT
            )
            page = sign_in(context, base_url, sam, errors, f"/rooms/?room={room.pk}")

            # when the chat and the factors page show, they are dark, and axe finds nothing
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(15, 20, 25)"
            check(page, "dark-chat")
            for control in (page.locator("#composer-input"), page.locator(".reaction").first):
                assert control.evaluate(BORDER_CONTRAST) >= 3
            page.goto(f"{base_url}/accounts/factors/")
            check(page, "dark-factors")
            page.goto(f"{base_url}/rooms/mentions/")
            expect(page.locator(".mention-me")).to_have_count(1)
            check(page, "dark-mentions")
        finally:
            browser.close()

    assert errors == []
