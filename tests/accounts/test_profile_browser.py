"""A new install in a real browser: the first security admin, alone, is shown the way to
rooms; a person sets their name on the profile page and their room sees it live; the
error pages and the favicon. axe-core runs on each new page, light and dark, and a
screenshot of each is saved to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, expect, sync_playwright
from pytest_django import Settings

from accounts.models import User
from accounts.services import bootstrap_token_create
from rooms.services import message_post
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    PASSWORD,
    Person,
    in_thread,
    launch,
    person,
    running_server,
    sign_in,
    watch_for_errors,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _production_hashers_and_fresh_limits(settings: Settings) -> None:
    # The server verifies passwords with the production hasher list (Argon2).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    cache.clear()


def check(page: Page, name: str) -> None:
    """axe-core finds no WCAG 2.0/2.1 A or AA violation; a screenshot is kept."""
    page.wait_for_load_state("networkidle")
    assert_accessible(page, name)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"profile-{name}.png"), full_page=True)


def test_first_boot_names_the_admin_who_is_then_shown_the_way_to_rooms(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a fresh install: no account, the one-time link `make run` prints
    token = bootstrap_token_create()
    people: dict[str, Person] = {}

    def enrolled() -> None:
        # The authenticator apps the first admin and a later member hold.
        people["sam"] = person(User.objects.get(username="sam"))
        people["mia"] = person(make_user(username="mia"))

    errors: list[str] = []
    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            # when the first security admin opens the link and gives a name with the account
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = context.new_page()
            watch_for_errors(page, errors)
            page.goto(f"{base_url}/accounts/bootstrap/{token}/")
            check(page, "bootstrap")
            page.get_by_label("First name").fill("Sam")
            page.get_by_label("Last name").fill("Ng")
            page.get_by_label("Username").fill("sam")
            page.get_by_label("Email").fill("sam@bank.example")
            page.locator("#id_new_password1").fill(PASSWORD)
            page.locator("#id_new_password2").fill(PASSWORD)
            page.get_by_role("button", name="Create account").click()
            expect(page).to_have_url(re.compile(r"/accounts/enrol/"))
            context.close()
            in_thread(enrolled)

            # then, signed in, the empty chat says what moves them on: no dead end
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = sign_in(context, base_url, people["sam"], errors, "/", lands_on="/rooms/")
            expect(page.get_by_role("button", name="Sign out sam")).to_be_visible()
            empty = page.locator(".message-empty")
            expect(empty).to_contain_text("You are not in any room yet")
            expect(page.locator("#empty-admin-hint")).to_contain_text("room admin role")
            expect(page.get_by_role("link", name="New room")).to_have_count(0)
            check(page, "empty-chat-security-admin")

            # and its link leads to inviting a colleague as room admin
            empty.get_by_role("link", name="invite your colleagues").click()
            expect(page).to_have_url(f"{base_url}/accounts/admin/users/")
            expect(page.locator("table").first).to_contain_text("Sam Ng")
            page.get_by_label("Email").fill("rita@bank.example")
            page.get_by_label("Role").last.select_option("room_admin")
            page.get_by_role("button", name="Invite").click()
            link = page.locator(".notice code").text_content() or ""
            assert "/accounts/invitation/" in link
            context.close()

            # and the colleague accepts it with her name, through the same rules
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = context.new_page()
            watch_for_errors(page, errors)
            page.goto(link)
            check(page, "invitation")
            page.get_by_label("First name").fill("Rita")
            page.get_by_label("Last name").fill("Okafor")
            page.get_by_label("Username").fill("rita")
            page.locator("#id_new_password1").fill(PASSWORD)
            page.locator("#id_new_password2").fill(PASSWORD)
            page.get_by_role("button", name="Create account").click()
            expect(page).to_have_url(re.compile(r"/accounts/enrol/"))
            context.close()

            # and a member who cannot create rooms is told to ask a room admin
            context = browser.new_context(viewport={"width": 1280, "height": 800}, **AXE_CONTEXT)
            page = sign_in(context, base_url, people["mia"], errors, "/", lands_on="/rooms/")
            expect(page.locator("#empty-member-hint")).to_contain_text("ask one to create")
            expect(page.locator("#empty-admin-hint")).to_have_count(0)
            check(page, "empty-chat-member")
            context.close()
        finally:
            browser.close()

    # then both accounts carry their names, Rita her room admin role, and no page failed
    assert User.objects.get(username="sam").display_name() == "Sam Ng"
    rita = User.objects.get(username="rita")
    assert rita.display_name() == "Rita Okafor"
    assert rita.has_perm("accounts.create_room")
    assert errors == []


def test_a_new_name_shows_live_in_the_room_and_the_new_pages_are_accessible(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given Alice and Bob in a room where Alice has written
    alice_user, bob_user = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=bob_user, members=(alice_user,), name="Rates desk")
    message_post(sender=alice_user, room=room, text="Morning, all.")
    alice, bob = person(alice_user), person(bob_user)
    errors: list[str] = []
    chat = f"/rooms/?room={room.pk}"

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            bob_context = browser.new_context(viewport={"width": 1280, "height": 800})
            bob_page = sign_in(bob_context, base_url, bob, errors, chat)
            alice_row = bob_page.locator(f'#member-list li[data-user-id="{alice_user.pk}"]')
            expect(alice_row.locator(".member-name")).to_have_text("alice")

            # when Alice opens her profile from the navigation and sets her name
            alice_context = browser.new_context(
                viewport={"width": 1280, "height": 800}, **AXE_CONTEXT
            )
            alice_page = sign_in(alice_context, base_url, alice, errors, chat)
            alice_page.get_by_role("navigation", name="Account").get_by_role(
                "link", name="Profile"
            ).click()
            expect(alice_page).to_have_url(f"{base_url}/accounts/profile/")
            check(alice_page, "profile")
            alice_page.get_by_label("First name").fill("Alice")
            alice_page.get_by_label("Last name").fill("Martin")
            alice_page.get_by_role("button", name="Save").click()
            expect(alice_page.locator(".messages")).to_contain_text("Your name is saved")
            check(alice_page, "profile-saved")

            # then Bob sees it at once, in the members and on her message, without reloading
            expect(alice_row.locator(".member-name")).to_have_text("Alice Martin", timeout=LIVE)
            sender = bob_page.locator(
                f'li.message-item[data-sender-id="{alice_user.pk}"] .msg-sender'
            )
            expect(sender.first).to_have_text("Alice Martin", timeout=LIVE)
            expect(bob_page.locator("#notices")).not_to_contain_text("role in this room")

            # and a name that would reverse the text is refused beside its field
            alice_page.get_by_label("Last name").fill("Martin\u202e")
            alice_page.get_by_role("button", name="Save").click()
            expect(alice_page.locator("#id_last_name_error")).to_contain_text("direction control")
            expect(alice_page.get_by_label("Last name")).to_have_attribute("aria-invalid", "true")
            check(alice_page, "profile-refused")

            # and the error pages are the portal's, accessible, with the request id
            for name, path, heading in [
                ("not-found", "/rooms/no-such-page/", "Page not found"),
                ("forbidden", "/accounts/admin/users/", "Not allowed"),
                ("method-not-allowed", f"/rooms/{room.pk}/archive/", "Not a page to open"),
            ]:
                alice_page.goto(f"{base_url}{path}")
                expect(alice_page.locator("h1")).to_have_text(heading)
                expect(alice_page.locator("code.request-id")).to_have_text(re.compile(r"\w{8,}"))
                check(alice_page, name)
            alice_page.get_by_role("link", name="Back to your rooms").click()
            expect(alice_page).to_have_url(re.compile(r"/rooms/"))

            # and /favicon.ico leads to the icon
            icon = alice_page.request.get(f"{base_url}/favicon.ico")
            assert icon.status == 200
            assert icon.headers["content-type"] == "image/svg+xml"

            # and the profile and the 404 page pass in dark mode too
            alice_page.emulate_media(color_scheme="dark")
            for name, path in [("dark-profile", "/accounts/profile/"), ("dark-not-found", "/x/")]:
                alice_page.goto(f"{base_url}{path}")
                check(alice_page, name)
        finally:
            browser.close()

    # and no script failed; the only failed loads are the error pages asked for
    unexpected = [e for e in errors if not re.search(r"status of (400|403|404|405)", e)]
    assert unexpected == []
