"""No plaintext at rest: a marker uploaded in a file is nowhere on disk, in the database
or in the logs, while the upload is half done and after it completed and scanned."""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

from files.models import StoredFile
from files.services import file_scan, upload_append, upload_create
from tests.accounts.factories import make_user
from tests.files.helpers import download, pieces
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

MAX_SCANNED_FILE = 256 * 1024 * 1024


def _files_under(folder: Path, since: float | None = None) -> list[Path]:
    found = []
    for root, _dirs, names in os.walk(folder, onerror=lambda _e: None):
        for name in names:
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            if since is not None and stat.st_mtime < since:
                continue
            if path.is_file() and stat.st_size <= MAX_SCANNED_FILE:
                found.append(path)
    return found


def _holds(path: Path, marker: bytes) -> bool:
    """Whether the file at ``path`` contains ``marker``.

    An SQLite database (and its -wal, -shm and -journal files) is read by another process:
    POSIX record locks belong to a process, and closing any descriptor of a file drops all
    of that process's locks on it, so opening the test database here would drop the locks
    this process's own connections hold, and another process could then take the WAL for
    unused and remove it under them (a "malformed" or "disk I/O error" database)."""
    if ".sqlite3" in path.name:
        found = subprocess.run(
            ["grep", "-q", "-F", "-a", "-e", marker.decode(), str(path)],
            check=False,
        )
        return found.returncode == 0
    try:
        return marker in path.read_bytes()
    except OSError:
        return False


def _holders(marker: bytes, folders: list[Path], since: float) -> list[str]:
    """Every file (new since ``since`` in shared folders), row or field holding ``marker``."""
    hits = []
    for folder in folders:
        for path in _files_under(folder, since):
            if _holds(path, marker):
                hits.append(str(path))
    for model in apps.get_models():
        for row in model._default_manager.all().values_list():
            for value in row:
                data = (
                    bytes(value)
                    if isinstance(value, bytes | memoryview)
                    else str(value).encode("utf-8", "replace")
                )
                if marker in data:
                    hits.append(f"{model._meta.label} row")
    return hits


def test_a_marker_in_a_file_is_nowhere_at_rest(
    clamd: OwnClamd, vault_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a file with a unique marker throughout (and at a chunk boundary)
    marker = f"SAFECHAT-MARKER-{secrets.token_hex(16)}".encode()
    data = (marker + os.urandom(1000)) * 300 + marker
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
    stored = upload_create(actor=owner, room=room, length=len(data), name="marker.bin")

    # when half of it has arrived (some chunks stored, a tail waiting)
    half = len(data) // 2 + 7
    stored = upload_append(actor=owner, stored=stored, offset=0, body=pieces(data[:half], 4096))

    # then the marker is nowhere
    assert stored.tail_name
    assert _holders(marker, folders, since) == []

    # when the rest arrives and the file is scanned
    stored = upload_append(actor=owner, stored=stored, offset=half, body=pieces(data[half:], 4096))
    file_scan(file_id=stored.pk)
    stored = StoredFile.objects.get(pk=stored.pk)
    assert stored.state == StoredFile.State.AVAILABLE
    assert download(owner, stored) == data

    # then still nowhere: not in blobs, temporary folders, the data folder, rows or logs
    assert _holders(marker, folders, since) == []
    assert marker.decode() not in caplog.text
