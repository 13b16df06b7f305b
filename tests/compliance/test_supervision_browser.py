"""A compliance officer walks the supervision queue in Chromium: from the admin's landing
page to the dashboard (charts drawn by the vendored Chart.js under the CSP), to the queue,
into a flagged message with its hit marked, and escalates it with a note. Screenshots of
the dashboard and the queue are saved as test artefacts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from pytest_django import Settings

from accounts.roles import Role
from audit.models import AuditEvent
from compliance.models import SupervisionItem
from compliance.services.supervision import (
    supervision_lexicon_create,
    supervision_run,
    supervision_term_add,
)
from rooms.services import message_post
from tests.accounts.factories import grant_role, make_user
from tests.rooms.conftest import SERVER_HASHERS
from tests.rooms.factories import make_room
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    PASSWORD,
    launch,
    person,
    running_server,
    watch_for_errors,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHARTS = 8  # the dashboard's charts (compliance.selectors.dashboard)


def test_an_officer_reviews_a_flagged_message_from_the_dashboard(
    tmp_path: Path, master_key_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a lexicon, a flagged message in a room, and a reviewer who did not send it
    settings.PASSWORD_HASHERS = SERVER_HASHERS
    monkeypatch.setattr("compliance.services.retention._rest", lambda seconds: None)
    curator = grant_role(make_user(username="carla"), Role.COMPLIANCE_OFFICER)
    reviewer_user = grant_role(make_user(username="rita"), Role.COMPLIANCE_OFFICER)
    sender = make_user(username="dan")
    room = make_room(owner=sender, name="Rates desk")
    lexicon = supervision_lexicon_create(actor=curator, name="Promises")
    supervision_term_add(actor=curator, lexicon=lexicon, kind="phrase", value="guarantee")
    message = message_post(sender=sender, room=room, text="I guarantee you a 20% return")
    message_post(sender=sender, room=room, text="lunch at noon?")
    supervision_run()
    item = SupervisionItem.objects.get(message_id=message.pk)
    rita = person(reviewer_user)
    errors: list[str] = []

    with running_server(tmp_path, master_key_file) as (base_url, _), sync_playwright() as pw:
        browser = launch(pw.chromium)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            watch_for_errors(page, errors)
            page.goto(f"{base_url}/accounts/sign-in/?next=/admin/")
            page.get_by_label("Username").fill(rita.username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Continue").click()
            page.get_by_label("Code").fill(rita.code())
            page.get_by_role("button", name="Verify").click()
            expect(page).to_have_url(f"{base_url}/admin/")

            # when she follows the landing page's link to her dashboard
            page.get_by_role("link", name="Compliance dashboard").click()

            # then the figures show one message to review, and every chart is drawn
            expect(page).to_have_url(f"{base_url}/admin/compliance/dashboard/")
            expect(page.locator('[data-figure="queue_pending"]')).to_have_text("1")
            expect(page.locator("body")).to_have_attribute(
                "data-charts-drawn", str(CHARTS), timeout=LIVE
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "compliance-dashboard.png"), full_page=True)

            # when she opens the queue from the figure, then the flagged message
            page.get_by_role("link", name=re.compile("messages to review")).click()
            expect(page.locator("#result_list")).to_contain_text("Promises")
            page.screenshot(path=str(ARTIFACTS / "supervision-queue.png"), full_page=True)
            page.locator(f'#result_list a[href*="/supervisionitem/{item.pk}/change/"]').click()

            # then she reads it with the matched words marked
            expect(page.locator(".supervision-text mark")).to_have_text("guarantee")
            expect(page.locator(".supervision-hits")).to_contain_text("Promises")

            # when she escalates it with a note
            page.get_by_label("Decision").select_option("escalate")
            page.get_by_label("Note (required)").fill("Promise of returns: refer to the desk head")
            page.get_by_role("button", name="Decide").click()

            # then she is back on the queue, told it was escalated
            expect(page.locator(".messagelist")).to_contain_text(f"Item {item.pk}: escalated")
            page.screenshot(path=str(ARTIFACTS / "supervision-escalated.png"), full_page=True)
        finally:
            browser.close()

    # and the item is escalated as hers, the read and the decision are on the record
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.ESCALATED
    assert item.escalated_by_id == reviewer_user.pk
    mine = AuditEvent.objects.filter(actor_id=reviewer_user.pk)
    assert mine.filter(action="supervision.item.viewed").count() == 1
    assert mine.filter(action="supervision.item.escalated").count() == 1
    # and no page raised a script error or a CSP violation
    assert errors == []
