"""Log lines are JSON objects with named fields only; a request's id follows it into the
Celery tasks it queues; and a marker posted, uploaded and exported is in no log line."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from audit.actions import AuditAction
from audit.models import AuditEvent
from compliance.models import ExportRequest
from compliance.services import export_approve, export_request
from compliance.tasks import export_run_task
from files.models import StoredFile
from files.tasks import scan_file_task
from files.tus import metadata_encode
from rooms.models import Message

# Imported as the module loads (it runs django.setup(), which configures logging anew),
# before any test captures the handler: the one requests then write to.
from safechat.asgi import application  # noqa: F401
from safechat.celery import REQUEST_ID_HEADER
from safechat.crypto import HpkePrivateKey, KeyPurpose
from safechat.logjson import FIELDS
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.files.asgi_client import Answer, call
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

TUS = {"Tus-Resumable": "1.0.0"}


def lines_of(output: io.StringIO) -> list[dict[str, Any]]:
    """Every line written, each parsed as the one JSON object it must be."""
    return [json.loads(line) for line in output.getvalue().splitlines()]


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """The headers of every task message published while the test runs."""
    seen: list[dict[str, Any]] = []

    def keep(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        seen.append(dict(headers or {}))

    before_task_publish.connect(keep, weak=False)
    try:
        yield seen
    finally:
        before_task_publish.disconnect(keep)


def _auth(user: User) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.WRITE)
    return {"Authorization": f"Bearer {secret}"}


def _post_message(auth: dict[str, str], room_id: int, text: str) -> Answer:
    body = json.dumps({"text": text}).encode()
    return call(
        "POST",
        f"/api/v1/rooms/{room_id}/messages/",
        headers={**auth, "Content-Type": "application/json", "Content-Length": str(len(body))},
        pieces=[body],
    )


def _upload(auth: dict[str, str], room_id: int, data: bytes, name: str) -> Answer:
    created = call(
        "POST",
        f"/api/v1/rooms/{room_id}/uploads/",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata_encode(
                {"filename": name, "filetype": "application/octet-stream"}
            ),
        },
    )
    assert created.status == 201, created.body
    location = "/" + created.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    return call(
        "PATCH",
        location,
        headers={
            **auth,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Content-Length": str(len(data)),
        },
        pieces=[data[i : i + 16_384] for i in range(0, len(data), 16_384)],
    )


def test_a_line_has_the_named_fields_only_and_what_a_library_attaches_is_dropped(
    log_output: io.StringIO,
) -> None:
    # when a library logs with objects attached (Django's request, uvicorn's coloured copy)
    logging.getLogger("django.request").warning(
        "Not Found: %s",
        "/accounts/invitation/SECRETinvite0123456789/",
        extra={"request": object(), "color_message": "/accounts/invitation/SECRETx/"},
    )

    # then the line is one JSON object with the named fields, the path's secret redacted
    (line,) = lines_of(log_output)
    assert set(line) <= set(FIELDS)
    assert {"time", "level", "logger", "message", "service", "request_id"} <= set(line)
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert line["message"] == "Not Found: /accounts/invitation/[redacted]/"
    assert "SECRET" not in log_output.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_task_queued_by_a_request_runs_and_logs_under_that_requests_id(
    clamd: OwnClamd, vault_dir: Path, published: list[dict[str, Any]], log_output: io.StringIO
) -> None:
    # given an upload completed over HTTP (its last request queues the scan)
    owner = make_user()
    room = make_room(owner=owner)
    answer = _upload(_auth(owner), room.pk, os.urandom(50_000), "report.dat")
    assert answer.status == 204, answer.body
    request_id = answer.headers["x-request-id"]

    # then the queued scan's message carries the request's id
    (headers,) = [h for h in published if h.get("task") == "files.scan_file"]
    assert headers[REQUEST_ID_HEADER] == request_id

    # when the worker runs it from that message
    stored = StoredFile.objects.get()
    scan_file_task.apply(kwargs={"file_id": stored.pk}, headers=headers)

    # then its audit event and its log lines (Celery's "succeeded" too) say the request
    event = AuditEvent.objects.get(action=AuditAction.FILE_SCAN_CLEAN)
    assert (event.channel, event.request_id) == ("task", request_id)
    in_task = [line for line in lines_of(log_output) if line.get("task") == "files.scan_file"]
    assert any("succeeded" in line["message"] for line in in_task)
    assert {line["request_id"] for line in in_task} == {request_id}


@pytest.mark.django_db(transaction=True)
def test_a_marker_posted_uploaded_and_exported_is_in_no_log_line(
    clamd: OwnClamd, vault_dir: Path, published: list[dict[str, Any]], log_output: io.StringIO
) -> None:
    marker = f"SAFECHAT-MARKER-{secrets.token_hex(16)}"
    owner = make_user()
    room = make_room(owner=owner)
    auth = _auth(owner)

    # when the marker is posted in a message over the API
    posted = _post_message(auth, room.pk, f"the figures: {marker}")
    assert posted.status == 201, posted.body
    # and uploaded in a file (its name too) over the upload protocol, then scanned
    data = (marker.encode() + os.urandom(500)) * 40
    uploaded = _upload(auth, room.pk, data, f"{marker}.dat")
    assert uploaded.status == 204, uploaded.body
    (scan,) = [h for h in published if h.get("task") == "files.scan_file"]
    scan_file_task.apply(kwargs={"file_id": StoredFile.objects.get().pk}, headers=scan)
    # and exported for a court, the export job run as the worker runs it
    recipient = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    today = timezone.now().date()
    export = export_request(
        actor=make_officer(),
        matter="SEC v. Bank 2026-17",
        reason="subpoena",
        rooms=[room],
        starts_on=today - timedelta(days=1),
        ends_on=today,
        recipient_public_key=base64.b64encode(recipient.public_key().to_bytes()).decode(),
    )
    export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)
    (run,) = [h for h in published if h.get("task") == "compliance.export_run"]
    export_run_task.apply(kwargs={"export_id": export.pk}, headers=run)

    # then all of it happened
    assert Message.objects.filter(room=room).count() == 2  # the text, and the file's
    assert StoredFile.objects.get().state == StoredFile.State.AVAILABLE
    assert ExportRequest.objects.get().state == ExportRequest.State.FINISHED
    # and lines were written, every one JSON, and none holds the marker
    lines = lines_of(log_output)
    assert lines
    assert marker not in log_output.getvalue()


def test_a_bad_host_header_is_a_warning_once_without_a_traceback(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # when a scanner sends three requests with a Host that is not allowed
    host = f"evil-{secrets.token_hex(4)}.example"  # a message of its own (once a minute)
    with caplog.at_level(logging.INFO):
        answers = [client.get("/api/v1/rooms/", HTTP_HOST=host) for _ in range(3)]

    # then each is a 400, and one WARNING without a traceback was written, not three ERRORs
    assert [answer.status_code for answer in answers] == [400, 400, 400]
    written = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert [(r.levelname, r.exc_info) for r in written] == [("WARNING", None)]
    assert host in written[0].getMessage()
