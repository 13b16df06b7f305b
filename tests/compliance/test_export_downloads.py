"""Downloading an eDiscovery archive: its requester only, a limited number of times,
before it expires; every download and every refused attempt on the record (issue 20)."""

from __future__ import annotations

import base64
import io
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.ediscovery_format import archive_verify
from audit.models import AuditEvent
from audit.signing import public_key
from compliance.models import ExportRequest
from compliance.services import (
    ComplianceRefused,
    export_approve,
    export_download,
    export_expire_due,
    export_request,
    export_run,
)
from compliance.services.export_job import export_blob_name
from files.blobs import blob_exists, blob_read_all
from rooms.services import message_post
from safechat.crypto import HpkePrivateKey, KeyPurpose
from tests.accounts.factories import make_user, sign_in_client
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

REFUSED = "export.action.refused"


def finished(*, recipient: HpkePrivateKey | None = None, max_downloads: int = 2) -> ExportRequest:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="ledger entry")
    today = timezone.now().date()
    export = export_request(
        actor=make_officer(),
        matter="FINRA 2026-4",
        reason="exam",
        rooms=[room],
        starts_on=today,
        ends_on=today,
        max_downloads=max_downloads,
        recipient_public_key=base64.b64encode(recipient.public_key().to_bytes()).decode()
        if recipient
        else "",
    )
    export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)
    done = export_run(export_id=export.pk)
    assert done is not None
    assert done.state == ExportRequest.State.FINISHED
    return done


def refusals_since(seq: int) -> list[str]:
    return [
        e.extra["reason"]
        for e in AuditEvent.objects.filter(seq__gt=seq, action=REFUSED).order_by("seq")
    ]


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_the_requester_downloads_their_own_archive_opened_and_it_verifies(tmp_path: Path) -> None:
    # given an archive sealed to the requesting officer's own key pair
    export = finished()
    requester = User.objects.get(pk=export.requested_by_id)

    # when they download it
    served = export_download(actor=requester, export=export)
    data = b"".join(served.pieces)

    # then they receive the tar, which verifies, and the download is counted and recorded
    assert served.filename.endswith(".tar")
    path = tmp_path / "a.tar"
    path.write_bytes(data)
    assert archive_verify(path, public_key()).ok
    assert b"ledger entry" not in blob_read_all(export_blob_name(export.pk))
    assert ExportRequest.objects.get(pk=export.pk).downloads == 1
    event = AuditEvent.objects.get(action="export.downloaded")
    assert event.extra == {"download": 1, "of": 2, "sealed": False}


def test_an_archive_for_an_outside_recipient_is_served_sealed() -> None:
    export = finished(recipient=HpkePrivateKey.generate(KeyPurpose.USER_HPKE))
    requester = User.objects.get(pk=export.requested_by_id)

    served = export_download(actor=requester, export=export)

    assert b"".join(served.pieces) == blob_read_all(export_blob_name(export.pk))
    assert served.filename.endswith(".sealed")


def test_downloads_stop_at_the_limit_and_the_attempt_is_audited() -> None:
    export = finished(max_downloads=2)
    requester = User.objects.get(pk=export.requested_by_id)
    for _ in range(2):
        b"".join(export_download(actor=requester, export=export).pieces)
    seq = last_seq()

    with pytest.raises(ComplianceRefused, match="as often as allowed"):
        export_download(actor=requester, export=export)

    assert ExportRequest.objects.get(pk=export.pk).downloads == 2
    assert refusals_since(seq) == ["download limit"]
    assert not AuditEvent.objects.filter(seq__gt=seq, action="export.downloaded").exists()


def test_nobody_else_downloads_it_not_even_the_approver() -> None:
    export = finished()
    approver = export.decided_by
    assert approver is not None
    seq = last_seq()

    with pytest.raises(ComplianceRefused, match="requested it"):
        export_download(actor=approver, export=export)
    with pytest.raises(ComplianceRefused):
        export_download(actor=make_user(), export=export)

    assert ExportRequest.objects.get(pk=export.pk).downloads == 0
    assert refusals_since(seq) == ["not the requester", "not allowed"]


def test_a_download_after_expiry_is_refused_and_expiry_removes_the_archive(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a finished archive past its expiry
    export = finished()
    requester = User.objects.get(pk=export.requested_by_id)
    ExportRequest.objects.filter(pk=export.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    seq = last_seq()

    # when its requester tries to download it
    with pytest.raises(ComplianceRefused, match="expired"):
        export_download(actor=requester, export=export)

    # then refused (audited), and the expiry job marks it expired and removes the blob
    assert refusals_since(seq) == ["expired"]
    with django_capture_on_commit_callbacks(execute=True):
        assert export_expire_due() == 1
    assert ExportRequest.objects.get(pk=export.pk).state == ExportRequest.State.EXPIRED
    assert not blob_exists(export_blob_name(export.pk))
    assert AuditEvent.objects.filter(action="export.expired", target_id=str(export.pk)).exists()
    assert export_expire_due() == 0


def test_the_admin_download_is_a_counted_post(tmp_path: Path) -> None:
    export = finished()
    requester = User.objects.get(pk=export.requested_by_id)
    client = Client()
    sign_in_client(client, requester, verified=True)

    response = client.post(
        "/admin/compliance/exportrequest/",
        {"action": "download", "_selected_action": [export.pk]},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert "manifest.json" in archive.getnames()
    assert ExportRequest.objects.get(pk=export.pk).downloads == 1
