"""Accessibility (WCAG 2.1 AA) in a real browser: axe-core on every page a person uses,
the portal's own and the admin's, light and dark; reflow at 320 px and at 200 % zoom;
the chat's keyboard and focus behaviour. A screenshot of each main page is saved to
test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, expect, sync_playwright
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from rooms.models import Room
from rooms.services import message_post, reaction_toggle
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room, make_room_admin
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import (
    ARTIFACTS,
    PASSWORD,
    Person,
    launch,
    person,
    running_server,
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
    """A room with a long topic, a thread, a reaction and a message with a heading."""
    room = make_room(owner=owner, members=(other,), name="Rates desk")
    Room.objects.filter(pk=room.pk).update(topic=LONG_TOPIC)
    opener = message_post(sender=other, room=room, text="Morning. Who covers the 10y?")
    message_post(sender=owner, room=room, text="I do. Axes in `#rates-axes`.", parent_id=opener.pk)
    quote = message_post(sender=other, room=room, text="# Client\nAsking for **5m 2y** at mid.")
    reaction_toggle(actor=owner, message=quote, emoji="👍")
    message_post(sender=owner, room=room, text="Filled at 99.5")
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
