"""Without a malware scanner, files wait, and everyone is told so: the uploader (the
upload's HEAD), the room's members (the chat page), operators (a warning at start, and
/readyz). Nothing is ever released unscanned."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from django.test import Client
from pytest_django import Settings

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from files import scanner
from files.models import StoredFile
from files.scanner import SCANNER_WARNINGS, ScannerState, scanner_check_at_start, scanner_state
from files.services import file_scan
from rooms.models import Message, Room
from tests.accounts.factories import make_user, sign_in_client
from tests.files.asgi_client import call
from tests.files.helpers import upload
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd
from tests.support.fixtures import project_env, start_server
from tests.support.servers import free_port

TUS = {"Tus-Resumable": "1.0.0"}


def _head(user: User, stored: StoredFile) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.WRITE)
    answer = call(
        "HEAD",
        f"/api/v1/uploads/{stored.uid}",
        headers={"Authorization": f"Bearer {secret}", **TUS},
    )
    assert answer.status == 200
    return dict(answer.headers)


def _page(user: User, room: Room) -> str:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client.get(f"/rooms/?room={room.pk}").content.decode()


# --- what the process finds -------------------------------------------------------------
def test_the_scanner_state_says_unconfigured_unreachable_or_ready(
    settings: Settings, tmp_path: Path, clamd_server: OwnClamd
) -> None:
    settings.SAFECHAT_CLAMD_SOCKET = ""
    assert scanner_state(fresh=True) == ScannerState.UNCONFIGURED
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "absent.sock")
    assert scanner_state(fresh=True) == ScannerState.UNREACHABLE
    settings.SAFECHAT_CLAMD_SOCKET = clamd_server.socket_path
    assert scanner_state(fresh=True) == ScannerState.READY


def test_clamd_is_asked_at_most_once_per_interval(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a configured clamd that does not answer, and a counter of the questions
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "absent.sock")
    asked: list[float | None] = []
    real_ping = scanner.clamd_ping

    def counted(timeout: float | None = None) -> None:
        asked.append(timeout)
        real_ping(timeout)

    monkeypatch.setattr(scanner, "clamd_ping", counted)

    # when the state is read often within the interval, then once it has passed
    states = [scanner_state() for _ in range(20)]
    monkeypatch.setattr(scanner, "SCANNER_STATE_SECONDS", 0.0)
    time.sleep(0.01)
    states.append(scanner_state())

    # then clamd was asked twice, each time with the short probe timeout
    assert set(states) == {ScannerState.UNREACHABLE}
    assert asked == [scanner.SCANNER_PROBE_TIMEOUT_SECONDS] * 2


def test_a_process_without_a_scanner_warns_once_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SAFECHAT_CLAMD_SOCKET = ""
    caplog.set_level(logging.WARNING, logger="files.scanner")

    scanner_check_at_start()
    scanner_check_at_start()

    said = [r for r in caplog.records if r.name == "files.scanner"]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.WARNING, SCANNER_WARNINGS[ScannerState.UNCONFIGURED])
    ]


def test_a_process_with_a_scanner_says_nothing_at_start(
    clamd: OwnClamd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="files.scanner")

    assert scanner_check_at_start() == ScannerState.READY
    assert [r for r in caplog.records if r.name == "files.scanner"] == []


# --- the uploader -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_uploader_learns_the_file_waits_for_a_scanner_and_it_stays_invisible() -> None:
    # given a member's complete upload, with no scanner configured
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,))
    stored = upload(actor=owner, room=room, data=b"quarterly figures", name="q3.txt")

    messages_before = Message.objects.filter(room=room).count()

    # when the worker tries to scan it and the uploader asks how it went
    state = file_scan(file_id=stored.pk)
    head = _head(owner, stored)

    # then it waits for a scanner, said as such, and nobody can see it
    assert state == StoredFile.State.PENDING_SCAN
    assert head["safechat-upload-state"] == "pending_scan"
    assert head["safechat-scanner"] == "unavailable"
    assert Message.objects.filter(room=room).count() == messages_before
    assert StoredFile.objects.get(pk=stored.pk).message_id is None
    assert StoredFile.objects.get(pk=stored.pk).state == StoredFile.State.PENDING_SCAN


@pytest.mark.django_db(transaction=True)
def test_with_a_scanner_a_pending_file_is_being_scanned(clamd: OwnClamd) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload(actor=owner, room=room, data=b"quarterly figures", name="q3.txt")

    head = _head(owner, stored)

    assert head["safechat-upload-state"] == "pending_scan"
    assert head["safechat-scanner"] == "ready"


@pytest.mark.django_db(transaction=True)
def test_a_file_with_its_verdict_says_nothing_of_the_scanner(clamd: OwnClamd) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload(actor=owner, room=room, data=b"quarterly figures", name="q3.txt")
    file_scan(file_id=stored.pk)

    head = _head(owner, stored)

    assert head["safechat-upload-state"] == "available"
    assert "safechat-scanner" not in head


# --- the room's members -------------------------------------------------------------------
@pytest.mark.django_db
def test_members_see_how_many_files_wait_for_the_scanner() -> None:
    # given a room where two files wait, with no scanner configured
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,))
    for name in ("a.txt", "b.txt"):
        upload(actor=owner, room=room, data=b"figures", name=name)

    # when a member opens the room
    page = _page(reader, room)

    # then the page says the files wait for the scanner, not who shared what
    assert (
        "Waiting for the malware scanner: 2 files shared here become available once scanned."
        in page
    )
    assert "a.txt" not in page
    assert "b.txt" not in page


@pytest.mark.django_db
def test_a_member_who_may_share_is_told_before_sharing() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    page = _page(owner, room)

    assert re.search(r"Waiting for the malware scanner: a file you share becomes available", page)


@pytest.mark.django_db
def test_nothing_is_said_while_a_scanner_answers(clamd: OwnClamd) -> None:
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,))
    upload(actor=owner, room=room, data=b"figures", name="a.txt")

    assert "Waiting for the malware scanner" not in _page(reader, room)
    assert "Waiting for the malware scanner" not in _page(owner, room)


@pytest.mark.django_db
def test_another_rooms_waiting_files_are_not_counted() -> None:
    owner, reader = make_user(), make_user()
    room = make_room(owner=owner, members=(reader,))
    other = make_room(owner=owner)
    upload(actor=owner, room=other, data=b"figures", name="a.txt")

    # the reader cannot share in a room without waiting files: nothing to say to them
    page = _page(reader, room)
    assert "files shared here" not in page


# --- operators ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_readyz_is_ready_and_warns_without_a_scanner(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["warnings"] == {"clamd": SCANNER_WARNINGS[ScannerState.UNCONFIGURED]}


@pytest.mark.django_db
def test_readyz_has_no_warning_with_a_scanner(client: Client, clamd: OwnClamd) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert "warnings" not in response.json()


def test_a_web_process_without_a_scanner_says_so_once_in_its_log(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a web process started with no scanner configured
    log = tmp_path / "web.log"
    env = project_env(
        tmp_path,
        SAFECHAT_MASTER_KEY_FILE=str(master_key_file),
        SAFECHAT_CLAMD_SOCKET="",
        SAFECHAT_CLAMD_HOST="",
    )
    process = start_server(env, free_port(), log=log)
    process.terminate()
    process.wait(timeout=10)

    # then its log says once that files wait for a scanner
    said = log.read_text().count(SCANNER_WARNINGS[ScannerState.UNCONFIGURED])
    assert said == 1
