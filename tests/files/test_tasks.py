"""The vault's Celery jobs call the services: scan, sweep, expire; a down scanner retries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django import Settings

from files.models import StoredFile
from files.services import upload_append, upload_create
from files.tasks import SCAN_MAX_RETRIES, expire_uploads_task, scan_file_task, scan_pending_task
from tests.accounts.factories import make_user
from tests.files.helpers import upload
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_scan_task_releases_a_clean_file(clamd: OwnClamd) -> None:
    owner = make_user()
    stored = upload(actor=owner, room=make_room(owner=owner), data=b"minutes of the meeting")

    assert scan_file_task.apply(args=(stored.pk,)).get() == "available"


def test_the_scan_task_retries_while_clamd_is_down(
    clamd: OwnClamd, settings: Settings, tmp_path: Path
) -> None:
    owner = make_user()
    stored = upload(actor=owner, room=make_room(owner=owner), data=b"minutes of the meeting")
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "down.sock")

    # run eagerly, a retry runs again at once: every attempt is made, none releases the file
    result = scan_file_task.apply(args=(stored.pk,))

    assert result.state == "FAILURE"
    row = StoredFile.objects.get(pk=stored.pk)
    assert row.state == StoredFile.State.PENDING_SCAN
    assert row.scan_attempts == SCAN_MAX_RETRIES + 1
    assert scan_pending_task.apply().get() == 0


def test_the_expiry_task_ends_abandoned_uploads(vault_dir: Path) -> None:
    owner = make_user()
    stored = upload_create(actor=owner, room=make_room(owner=owner), length=10, name="a.bin")
    upload_append(actor=owner, stored=stored, offset=0, body=[b"12345"])
    StoredFile.objects.filter(pk=stored.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    assert expire_uploads_task.apply().get() == 1
    assert expire_uploads_task.apply().get() == 0  # idempotent
    assert not [p for p in vault_dir.rglob("*") if p.is_file()]
