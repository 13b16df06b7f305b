"""Without a malware scanner, in a real browser: the uploader's row says the file waits
for the scanner (never "Scanning…" forever), a member sees how many files wait, nobody
sees the file; once a scanner has scanned it, it is shared and the notices go.

The browser, the server and signing in are shared with the other browser tests
(tests/support/browser.py). The server has no scanner configured; the test then scans
the file itself, as a worker with a scanner would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from playwright.sync_api import expect, sync_playwright
from pytest_django import Settings

from files.models import StoredFile
from files.services import files_scan_pending
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.axe import AXE_CONTEXT, assert_accessible
from tests.support.browser import (
    ARTIFACTS,
    LIVE,
    in_thread,
    launch,
    person,
    running_server,
    sign_in,
)
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

WAITING = "Waiting for the malware scanner: the file becomes available once it is scanned."


@pytest.fixture(autouse=True)
def _production_hashers_and_fresh_limits(settings: Settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    cache.clear()


def test_a_file_shared_without_a_scanner_waits_and_everyone_is_told(
    tmp_path: Path, master_key_file: Path, settings: Settings, shared_clamd: OwnClamd
) -> None:
    # given Gina and Hal in a room, on a server with no malware scanner
    gina_user = make_user(username="gina", first_name="Gina", last_name="Moss")
    hal_user = make_user(username="hal", first_name="Hal", last_name="Berg")
    room = make_room(owner=gina_user, members=(hal_user,), name="Deal room")
    gina, hal = person(gina_user), person(hal_user)
    errors: list[str] = []
    vault = tmp_path / "data" / "vault"
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(vault), "base_url": None},
        },
    }
    no_scanner = {"SAFECHAT_CLAMD_SOCKET": "", "SAFECHAT_CLAMD_HOST": ""}

    with (
        running_server(tmp_path, master_key_file, **no_scanner) as (base_url, _),
        sync_playwright() as pw,
    ):
        browser = launch(pw.chromium)
        try:
            gina_page = sign_in(
                browser.new_context(**AXE_CONTEXT),
                base_url,
                gina,
                errors,
                f"/rooms/?room={room.pk}",
            )
            # before sharing, she is told files wait for the scanner
            notice = gina_page.locator("#scan-waiting")
            expect(notice).to_contain_text("a file you share becomes available once it is scanned")

            # when she attaches a file
            gina_page.locator("#composer-files").set_input_files(
                {"name": "Term sheet.txt", "mimeType": "text/plain", "buffer": b"EUR 5m 2y"}
            )

            # then her row says it waits for the scanner, not "Scanning…"
            row = gina_page.locator("#uploads li.upload")
            expect(row.locator(".upload-status")).to_have_text(WAITING, timeout=LIVE)
            assert_accessible(gina_page, "an upload waiting for the scanner")
            ARTIFACTS.mkdir(exist_ok=True)
            gina_page.screenshot(path=str(ARTIFACTS / "files-waiting-for-scanner.png"))

            # and Hal, opening the room, is told one file waits, and sees no file
            hal_page = sign_in(
                browser.new_context(), base_url, hal, errors, f"/rooms/?room={room.pk}"
            )
            expect(hal_page.locator("#scan-waiting")).to_have_text(
                "Waiting for the malware scanner: 1 file shared here becomes available "
                "once scanned."
            )
            expect(hal_page.locator(".msg-file")).to_have_count(0)

            # when a scanner scans it (as a worker with clamd would)
            settings.SAFECHAT_CLAMD_SOCKET = shared_clamd.socket_path
            settings.SAFECHAT_CLAMD_HOST = ""
            in_thread(files_scan_pending)

            # then Gina's upload says it is shared (her page asks the upload's state), and
            # in the room the file is shown and no file is said to wait (the server itself
            # still has no scanner, so those who may share are still told so). Pages are
            # loaded again: the scan ran in this test's process, whose events reach the
            # server's sockets only through a shared channel layer (Redis), not through the
            # embedded default's in-process one.
            expect(row.locator(".upload-status")).to_have_text("Shared", timeout=LIVE * 3)
            for page in (gina_page, hal_page):
                page.reload()
                expect(page.locator(".msg-file-name")).to_contain_text(
                    "Term sheet.txt", timeout=LIVE
                )
                expect(page.locator("#scan-waiting")).not_to_contain_text("shared here")
        finally:
            browser.close()

    assert errors == []
    assert StoredFile.objects.get().state == StoredFile.State.AVAILABLE
