""" "Add a member" in a real browser: the username field is a combobox that suggests the
people the owner may add (never a compliance officer, never someone behind a barrier from
them, never a member already), picked from the keyboard, and "@carol" is accepted.

The browser, the server and signing in are the shared ``chat_browser`` fixture
(tests/rooms/conftest.py, tests/support/browser.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.roles import Role
from rooms.models import Membership
from rooms.services import barrier_create, group_create, group_members_set
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room
from tests.support.axe import assert_accessible
from tests.support.browser import ARTIFACTS, LIVE, ChatBrowser, person

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_owner_picks_a_colleague_to_add_from_the_keyboard(
    chat_browser: ChatBrowser,
) -> None:
    # given an owner's room with Cal in it; Carol and Carl outside it; a compliance
    # officer and a researcher behind a barrier from the owner, whose names match too
    owner = make_user(username="olivia", first_name="Olivia", last_name="Hart")
    cal = make_user(username="cal", first_name="Cal", last_name="Ng")
    carol = make_user(username="carol", first_name="Carol", last_name="Jones")
    make_user(username="carl", first_name="Carl", last_name="Meyer")
    officer = make_user(username="cara", first_name="Cara", last_name="Stone")
    grant_role(officer, Role.COMPLIANCE_OFFICER)
    researcher = make_user(username="carmen", first_name="Carmen", last_name="Ruiz")
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    deals = group_create(actor=admin, name="deals")
    research = group_create(actor=admin, name="research")
    group_members_set(actor=admin, group=deals, add=[owner])
    group_members_set(actor=admin, group=research, add=[researcher])
    barrier_create(actor=admin, group_a=deals, group_b=research)
    room = make_room(owner=owner, members=(cal,), name="Rates desk")
    olivia = person(owner)

    with chat_browser() as browser:
        page = browser.sign_in(olivia, f"/rooms/?room={room.pk}")
        field = page.get_by_role("combobox", name="Username")
        listbox = page.get_by_role("listbox", name="People you can add")
        expect(field).to_have_attribute("aria-expanded", "false")

        # when she types "@ca" in the Username field
        field.focus()
        page.keyboard.type("@ca", delay=30)

        # then only the people she may add are offered: no member, no compliance
        # officer, nobody behind a barrier from her
        expect(listbox).to_be_visible(timeout=LIVE)
        options = listbox.get_by_role("option")
        expect(options).to_have_count(2)
        expect(options.nth(0)).to_contain_text("@carl")
        expect(options.nth(1)).to_contain_text("@carol")
        expect(field).to_have_attribute("aria-expanded", "true")
        expect(field).to_have_attribute("aria-activedescendant", "add-member-listbox-option-0")
        expect(options.nth(0)).to_have_attribute("aria-selected", "true")
        expect(page.locator("#live-announcer")).to_contain_text("2 people to add")
        assert_accessible(page, "the member picker, open")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "portal-member-picker.png"))

        # when she moves to Carol and picks her with Enter
        page.keyboard.press("ArrowDown")
        expect(field).to_have_attribute("aria-activedescendant", "add-member-listbox-option-1")
        expect(options.nth(1)).to_have_attribute("aria-selected", "true")
        page.keyboard.press("Enter")

        # then the field holds her username, the list is closed and focus stayed
        expect(field).to_have_value("carol")
        expect(field).to_have_attribute("aria-expanded", "false")
        expect(listbox).to_be_hidden()
        expect(field).to_be_focused()

        # and Enter adds her
        page.keyboard.press("Enter")
        expect(page.locator(".messages")).to_contain_text("carol was added as member.")
        expect(page.locator("#member-list")).to_contain_text("@carol")

        # and, typed as a mention without picking, "@Carl" is added too
        field = page.get_by_role("combobox", name="Username")
        field.fill("@Carl")
        field.press("Escape")
        expect(page.get_by_role("listbox", name="People you can add")).to_be_hidden()
        page.get_by_role("button", name="Add member").click()
        expect(page.locator(".messages")).to_contain_text("carl was added as member.")

    assert browser.errors == []
    members = set(Membership.objects.filter(room=room).values_list("user__username", flat=True))
    assert members == {"olivia", "cal", "carol", "carl"}
    assert carol.pk in set(Membership.objects.filter(room=room).values_list("user_id", flat=True))
