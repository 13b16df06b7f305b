"""A PDF's first page as a preview: rendered by PDFium in a short-lived sandboxed process,
sealed like the file, shown in the room; a hostile or broken PDF gets none and is still
shared; no plaintext reaches a disk on the way."""

from __future__ import annotations

import io
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from PIL import Image

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from files import pdf_preview
from files.models import StoredFile
from files.pdf_preview import PDF_MAX_PAGE_POINTS, sandboxed_run
from files.previews import PREVIEW_EDGE, preview_render
from rooms.selectors import message_page
from tests.accounts.factories import make_user
from tests.files.helpers import download, upload_and_scan
from tests.files.test_at_rest import _holders
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

RED_BOX = b"1 0 0 rg 0 0 150 100 re f"  # the lower-left quarter of a 300 x 200 page, red


def make_pdf(width: float = 300, height: float = 200, content: bytes = RED_BOX) -> bytes:
    """A valid one-page PDF (objects, cross-reference table and trailer, offsets exact)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Contents 4 0 R >>"
        % (str(width).encode(), str(height).encode()),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _bearer(user: User) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.READ)
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


# --- in a room --------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_pdf_gets_its_first_page_as_an_encrypted_preview(
    client: Client, clamd: OwnClamd, vault_dir: Path
) -> None:
    # given a member and a PDF shared in their room
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    stored = upload_and_scan(actor=owner, room=room, data=make_pdf(), name="Term sheet.pdf")

    # when the member fetches its preview
    response = client.get(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/preview",
        **_bearer(member),  # type: ignore[arg-type]
    )

    # then it is the first page, drawn at the preview's size, as a JPEG never cached
    assert stored.state == StoredFile.State.AVAILABLE
    assert stored.preview_type == "image/jpeg"
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    shown = Image.open(io.BytesIO(response.content)).convert("RGB")
    assert shown.width == PREVIEW_EDGE
    assert abs(shown.height - PREVIEW_EDGE * 200 / 300) <= 1  # the aspect ratio kept
    assert shown.getpixel((20, shown.height - 20)) == pytest.approx((255, 0, 0), abs=16)
    assert shown.getpixel((shown.width - 20, 20)) == pytest.approx((255, 255, 255), abs=16)
    # and the room's message offers it inline
    (view,) = message_page(reader=member, room=room)
    assert view.attachment is not None
    assert view.attachment.has_preview is True
    # and what is stored is ciphertext, not a JPEG
    (blob,) = list(vault_dir.rglob("preview"))
    assert not blob.read_bytes().startswith(b"\xff\xd8\xff")
    assert response.content not in blob.read_bytes()


@pytest.mark.django_db
def test_a_corrupt_pdf_is_shared_without_a_preview(
    client: Client, clamd: OwnClamd, vault_dir: Path
) -> None:
    # given a file that starts like a PDF and is not one
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = b"%PDF-1.7\n" + os.urandom(5000)

    # when it is uploaded and scanned
    stored = upload_and_scan(actor=owner, room=room, data=data, name="broken.pdf")

    # then it is shared and downloadable, with no preview and nothing stored for one
    assert stored.state == StoredFile.State.AVAILABLE
    assert stored.preview_type == ""
    assert not list(vault_dir.rglob("preview"))
    (view,) = message_page(reader=member, room=room)
    assert view.attachment is not None
    assert view.attachment.has_preview is False
    assert download(member, stored) == data
    preview = client.get(
        f"/api/v1/rooms/{room.pk}/files/{stored.uid}/preview",
        **_bearer(member),  # type: ignore[arg-type]
    )
    assert preview.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_pdf_and_its_preview_leave_no_plaintext_on_disk(
    clamd: OwnClamd, vault_dir: Path, tmp_path: Path
) -> None:
    # given a PDF whose content stream carries a unique marker
    marker = f"SAFECHAT-PDF-MARKER-{secrets.token_hex(16)}".encode()
    data = make_pdf(content=RED_BOX + b"\n% " + marker)
    since = time.time() - 1
    folders = [
        vault_dir,
        tmp_path,
        Path(settings.DATA_DIR),
        Path(tempfile.gettempdir()),
        clamd.spool,
        clamd.workdir,
    ]
    owner = make_user()
    room = make_room(owner=owner)

    # when it is uploaded, scanned and previewed
    stored = upload_and_scan(actor=owner, room=room, data=data, name="marked.pdf")

    # then it has a preview, and the marker is nowhere at rest
    assert stored.preview_type == "image/jpeg"
    assert _holders(marker, folders, since) == []


# --- the page's bounds ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("width", "height"),
    [
        (100_000, 100_000),  # a page the size of a field
        (PDF_MAX_PAGE_POINTS + 1, 200),  # just past the specification's largest
        (14_000, 5),  # a side under a pixel at the preview's size
    ],
    ids=["huge", "past-limit", "thin"],
)
def test_a_page_outside_the_bounds_gets_no_preview(width: float, height: float) -> None:
    assert preview_render(make_pdf(width, height)) is None


def test_a_page_at_the_largest_size_is_previewed_within_the_edge() -> None:
    preview = preview_render(make_pdf(PDF_MAX_PAGE_POINTS, PDF_MAX_PAGE_POINTS / 2))

    assert preview is not None
    assert Image.open(io.BytesIO(preview.image)).size == (PREVIEW_EDGE, PREVIEW_EDGE // 2)


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7 not a document", b"%PDF-" + b"\x00" * 100, make_pdf()[:200]],
    ids=["text", "zeros", "truncated"],
)
def test_an_unreadable_pdf_gets_no_preview(data: bytes) -> None:
    assert preview_render(data) is None


# --- the sandbox ------------------------------------------------------------------------
def _python(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", code]


def test_the_renderer_is_killed_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a renderer that never ends (sleeping: the CPU limit would not stop it)
    started = time.monotonic()

    # when it runs with a one-second deadline
    result = sandboxed_run(
        _python("import time; time.sleep(60)"), b"x", max_output=100, timeout=1.0
    )

    # then it is given up and killed within about that
    assert result is None
    assert time.monotonic() - started < 5


def test_the_renderer_cannot_use_more_cpu_than_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_preview, "PDF_RENDER_CPU_SECONDS", 1)

    result = sandboxed_run(_python("while True: pass"), b"", max_output=100, timeout=20.0)

    assert result is not None
    status, _answer = result
    assert status < 0  # killed by a signal (SIGXCPU), long before the deadline


def test_the_renderer_cannot_take_more_memory_than_its_limit() -> None:
    code = "import sys; b = bytearray(1024 ** 3); sys.stdout.write('allocated')"

    result = sandboxed_run(_python(code), b"", max_output=100, timeout=20.0)

    assert result is not None
    status, answer = result
    assert status != 0
    assert b"allocated" not in answer


def test_the_renderer_cannot_write_a_file(tmp_path: Path) -> None:
    # given a renderer that reads its input and tries to keep it in a file
    target = tmp_path / "spilled.pdf"
    code = (
        f"import sys; f = open({str(target)!r}, 'wb'); f.write(sys.stdin.buffer.read()); f.flush()"
    )

    result = sandboxed_run(_python(code), b"%PDF-secret", max_output=100, timeout=20.0)

    # then its first write fails (RLIMIT_FSIZE 0; Python ignores SIGXFSZ, so EFBIG), it
    # ends with an error, and not a byte reached the disk
    assert result is not None
    status, _answer = result
    assert status != 0
    assert not target.exists() or target.read_bytes() == b""


def test_the_renderer_saying_too_much_is_cut_off() -> None:
    code = "import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"

    assert sandboxed_run(_python(code), b"", max_output=1000, timeout=20.0) is None


def test_the_renderer_sees_none_of_the_workers_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFECHAT_MASTER_KEY_FOR_THIS_TEST", "secret-value")
    code = "import os, sys; sys.stdout.write(repr(sorted(os.environ)))"

    result = sandboxed_run(_python(code), b"", max_output=10_000, timeout=20.0)

    assert result is not None
    status, answer = result
    assert status == 0
    assert b"SAFECHAT" not in answer
    assert b"secret-value" not in answer


def test_a_malformed_answer_from_the_renderer_gives_no_preview(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a renderer that claims a larger image than a preview may be
    code = (
        "import struct, sys; sys.stdout.buffer.write(b'SCPV' + struct.pack('>HH', 5000, 1)"
        " + b'\\0' * 15000)"
    )
    monkeypatch.setattr(pdf_preview, "pdf_render_command", lambda **_kwargs: _python(code))

    assert preview_render(make_pdf()) is None


def test_without_its_limits_the_renderer_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a system where the child's limits cannot be set
    def refuse(*_args: object) -> None:
        raise PermissionError("prlimit refused")

    monkeypatch.setattr("resource.prlimit", refuse)

    # then a PDF gets no preview (and no error), rather than one rendered without limits
    assert preview_render(make_pdf()) is None
