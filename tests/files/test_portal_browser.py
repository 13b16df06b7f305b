"""Sharing a file from the chat portal in a real browser: dropped on the message list,
uploaded over tus with a progress bar (resuming after the connection drops), scanned by
a real clamd, shown in the room with its preview, name, size, uploader and SHA-256, and
downloaded back intact.

The browser, the server and signing in are shared with the other browser tests
(tests/support/browser.py). The server has no Celery worker: the test runs the scan
itself, on the same database and vault folder, as the worker would.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.cache import cache
from PIL import Image
from playwright.sync_api import Route, expect, sync_playwright
from pytest_django import Settings

from files.models import StoredFile
from files.services import files_scan_pending
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
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

# The portal's PATCH size, set small here so the test file takes three requests.
CHUNK = 4 * 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


def _photo() -> bytes:
    """A 2400 x 1600 PNG of noise (about 11 MB: three requests) with a visible band."""
    image = Image.frombytes("RGB", (2400, 1600), os.urandom(2400 * 1600 * 3))
    image.paste((20, 110, 190), (0, 0, 2400, 500))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_a_file_dropped_in_the_room_uploads_with_progress_and_is_shared_with_its_preview(
    tmp_path: Path, master_key_file: Path, settings: Settings, shared_clamd: OwnClamd
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    owner = make_user(username="alice")
    room = make_room(owner=owner, name="Deal room")
    alice = person(owner)
    data = _photo()
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    # The server keeps its blobs in its data folder; the scan (here) reads them there.
    vault = tmp_path / "data" / "vault"
    settings.STORAGES = {
        **settings.STORAGES,
        "vault": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(vault), "base_url": None},
        },
    }
    settings.SAFECHAT_CLAMD_SOCKET = shared_clamd.socket_path
    settings.SAFECHAT_CLAMD_HOST = ""

    with (
        running_server(
            tmp_path,
            master_key_file,
            SAFECHAT_CLAMD_SOCKET=shared_clamd.socket_path,
            SAFECHAT_UPLOAD_CHUNK_BYTES=str(CHUNK),
        ) as (base_url, _server),
        sync_playwright() as pw,
    ):
        browser = launch(pw.chromium)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = sign_in(context, base_url, alice, errors, f"/rooms/?room={room.pk}")
            # The network under the test's control: every PATCH's offset is noted, and the
            # second is held (so the bar is seen mid-way), then its connection is cut.
            offsets: list[int] = []
            held: list[Route] = []

            def patches(route: Route) -> None:
                if route.request.method != "PATCH":
                    route.continue_()
                    return
                offsets.append(int(route.request.headers["upload-offset"]))
                if len(offsets) == 2:
                    held.append(route)
                else:
                    route.continue_()

            page.route("**/api/v1/uploads/*", patches)

            # Alice drops the file on the message list.
            transfer = page.evaluate_handle(
                """([name, b64]) => {
                    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                    const dt = new DataTransfer();
                    dt.items.add(new File([bytes], name, { type: "image/png" }));
                    return dt;
                }""",
                ["Term sheet (draft).png", base64.b64encode(data).decode()],
            )
            page.dispatch_event("#message-scroller", "dragenter", {"dataTransfer": transfer})
            page.dispatch_event("#message-scroller", "dragover", {"dataTransfer": transfer})
            page.dispatch_event("#message-scroller", "drop", {"dataTransfer": transfer})

            # She sees its progress bar part-way.
            row = page.locator("#uploads li.upload")
            expect(row).to_have_count(1)
            bar = row.locator("progress")
            expect(bar).to_be_visible()
            for _ in range(LIVE // 100):
                if held:
                    break
                page.wait_for_timeout(100)
            assert held, "the second request never came"
            shown = int(bar.get_attribute("value") or 0)
            assert 0 < shown < 100
            expect(row.locator(".upload-status")).to_contain_text("%")
            page.screenshot(path=str(ARTIFACTS / "files-upload-progress.png"))

            # The connection drops mid-request: the upload resumes where the server says
            # it stands (HEAD), not from the start.
            held[0].abort("connectionreset")
            expect(row.locator(".upload-status")).to_contain_text("Scanning", timeout=LIVE * 3)
            expect(bar).to_have_attribute("value", "100")
            assert offsets[0] == 0
            assert offsets[1] == CHUNK  # the one cut
            assert offsets[2] > 0  # resumed at the offset the server kept, never at 0
            assert sorted(offsets[2:]) == offsets[2:]

            # The worker's scan: clean, so the file is shared in the room.
            in_thread(files_scan_pending)
            expect(row.locator(".upload-status")).to_have_text("Shared", timeout=LIVE)

            # In the room: the preview, name, size, uploader and SHA-256.
            page.reload()
            item = page.locator("#message-list .message-item").last
            figure = item.locator("figure.msg-file")
            expect(figure.locator(".msg-file-name")).to_contain_text("Term sheet (draft).png")
            expect(figure.locator(".msg-file-uploader")).to_contain_text("alice")
            expect(figure.locator(".msg-file-size")).to_contain_text("MB")
            digest = hashlib.sha256(data).hexdigest()
            expect(figure.locator(".msg-file-hash summary")).to_contain_text(digest[:12])
            expect(figure.locator(".msg-file-hash summary")).to_have_attribute(
                "title", f"SHA-256 {digest}"
            )
            preview = figure.locator("img.msg-file-preview")
            expect(preview).to_be_visible()
            page.wait_for_function(
                "() => { const i = document.querySelector('img.msg-file-preview');"
                " return i && i.complete && i.naturalWidth === 640; }",
                timeout=LIVE,
            )
            figure.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "files-shared-with-preview.png"))

            # She downloads it: the same bytes.
            with page.expect_download() as caught:
                figure.locator(".msg-file-name").click()
            download = caught.value
            saved = tmp_path / "downloaded.png"
            download.save_as(saved)
            assert download.suggested_filename == "Term sheet (draft).png"
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest
            context.close()
        finally:
            browser.close()

    # The console's only complaint is the connection the test cut.
    (cut,) = [e for e in errors if "ERR_CONNECTION_RESET" in e]
    assert "/api/v1/uploads/" in cut
    assert [e for e in errors if e != cut] == []
    (stored,) = StoredFile.objects.filter(room=room)
    assert stored.state == StoredFile.State.AVAILABLE
    assert stored.preview_type == "image/jpeg"
    assert len(stored.segment_starts) >= 2  # one per request that sealed whole chunks
