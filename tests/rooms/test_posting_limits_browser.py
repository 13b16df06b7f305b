"""A post the rate limit refuses, in a real browser: it is marked refused on the message
itself (never left "Sending…" or "Not confirmed"), says when to try again, keeps its text,
and is stored once when the person sends it again.

The browser, the server and signing in are shared with the other browser tests
(tests/support/browser.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from pytest_django import Settings

from rooms.models import Message
from rooms.selectors import message_page
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.browser import ARTIFACTS, LIVE, launch, person, running_server, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_post_over_the_rate_limit_is_marked_refused_and_sent_again_by_the_person(
    tmp_path: Path, master_key_file: Path, settings: Settings
) -> None:
    # given a server allowing two posts in any 4 s, and a member of a room
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    owner = make_user(username="dana")
    room = make_room(owner=owner, name="Repo desk")
    dana = person(owner)
    errors: list[str] = []
    limits = {"SAFECHAT_POST_RATE_LIMIT": "2/4"}

    with (
        running_server(tmp_path, master_key_file, **limits) as (base_url, _),
        sync_playwright() as pw,
    ):
        browser = launch(pw.chromium)
        try:
            page = sign_in(browser.new_context(), base_url, dana, errors, f"/rooms/?room={room.pk}")
            composer = page.locator("#composer-input")
            stored = page.locator("#message-list .message-item[data-message-id]")

            # when she posts three messages at once
            for text in ("one", "two", "three"):
                composer.fill(text)
                composer.press("Enter")
            expect(stored).to_have_count(2, timeout=LIVE)

            # then the third is marked refused on the message, with when to try again, and
            # kept with its text; nothing is left pending
            refused = page.locator("#message-list .message-item.pending.failed")
            expect(refused).to_have_count(1, timeout=LIVE)
            expect(refused.locator(".msg-body")).to_have_text("three")
            expect(refused.locator(".msg-status")).to_contain_text(
                re.compile(r"Too many messages: try again in \d s")
            )
            expect(refused.get_by_role("button", name="Send again")).to_be_visible()
            expect(page.locator("#composer-error")).to_contain_text("Too many messages")
            expect(page.locator("#message-list")).not_to_contain_text("Sending…")
            expect(page.locator("#message-list")).not_to_contain_text("Not confirmed")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "portal-post-rate-limited.png"))

            # and it is not sent on its own: once the wait is over, she is told she may
            expect(refused.locator(".msg-status")).to_contain_text(
                "you can send it again now", timeout=LIVE
            )
            expect(stored).to_have_count(2)

            # when she sends it again from the keyboard
            refused.get_by_role("button", name="Send again").focus()
            page.keyboard.press("Enter")

            # then it is stored once and shown as a stored message
            expect(stored).to_have_count(3, timeout=LIVE)
            expect(stored.last.locator(".msg-body")).to_have_text("three")
            expect(page.locator("#message-list .message-item.pending")).to_have_count(0)
        finally:
            browser.close()

    assert errors == []
    texts = [view.text for view in message_page(reader=owner, room=room, limit=10)]
    assert sorted(t or "" for t in texts) == ["one", "three", "two"]
    assert Message.objects.filter(room=room).count() == 3
