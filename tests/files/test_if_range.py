"""Resuming a download: the ETag of a file and If-Range (RFC 9110, sections 8.8.3, 13.1.5).

A client that kept part of a file asks for the rest with ``Range`` and ``If-Range: <the
ETag it was given>``; if that tag is not the file's (another file, a weak tag, a date, a
malformed value), it must get the whole file (200), never a part of different bytes.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files.api.views import if_range_allows
from files.models import StoredFile
from files.selectors import file_etag
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE
from tests.accounts.factories import make_user
from tests.files.asgi_client import call
from tests.files.helpers import upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = DEFAULT_CHUNK_SIZE


@pytest.fixture
def two_files(clamd: OwnClamd) -> tuple[User, StoredFile, StoredFile, bytes]:
    """A member, and two files of the same room with the same bytes (and so the same
    SHA-256), uploaded one after the other."""
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = os.urandom(2 * CHUNK + 77)
    first = upload_and_scan(actor=owner, room=room, data=data, name="statement.csv")
    second = upload_and_scan(actor=owner, room=room, data=data, name="statement.csv")
    return member, first, second, data


def _auth(user: User) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.READ)
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _download_url(stored: StoredFile) -> str:
    return f"/api/v1/rooms/{stored.room_id}/files/{stored.uid}/download"


def _ranges_recorded() -> list[tuple[int, int]]:
    return [
        (event.extra["first"], event.extra["last"])
        for event in AuditEvent.objects.filter(action="file.downloaded").order_by("seq")
    ]


def test_a_download_carries_a_strong_etag_that_names_the_file_not_its_content(
    client: Client, two_files: tuple[User, StoredFile, StoredFile, bytes]
) -> None:
    # given two files with the same bytes
    member, first, second, data = two_files
    auth = _auth(member)

    # when the member downloads the first twice (once a part) and the second once
    whole = client.get(_download_url(first), **auth)  # type: ignore[arg-type]
    part = client.get(_download_url(first), HTTP_RANGE="bytes=0-9", **auth)  # type: ignore[arg-type]
    other = client.get(_download_url(second), **auth)  # type: ignore[arg-type]

    # then the tag is strong, the same on the 200 and the 206, another file's differs, and
    # nothing of the content's digest is in it
    etag = whole["ETag"]
    assert etag == file_etag(first)
    assert etag[0] == etag[-1] == '"'
    assert len(etag) == 34
    assert part.status_code == 206
    assert part["ETag"] == etag
    assert other["ETag"] != etag
    digest = hashlib.sha256(data).hexdigest()
    assert digest[:32] not in etag
    assert digest[-32:] not in etag
    assert first.uid.hex not in etag


def test_a_matching_if_range_gets_the_part_asked_for(
    client: Client, two_files: tuple[User, StoredFile, StoredFile, bytes]
) -> None:
    # given a member who downloaded part of a file and kept its ETag
    member, stored, _other, data = two_files
    auth = _auth(member)
    etag = client.get(_download_url(stored), HTTP_RANGE="bytes=0-99", **auth)["ETag"]  # type: ignore[arg-type]

    # when they ask for the rest, if it is still that file
    response = client.get(
        _download_url(stored),
        HTTP_RANGE="bytes=100-",
        HTTP_IF_RANGE=etag,
        **auth,  # type: ignore[arg-type]
    )

    # then they get exactly the rest (206), and the download of that range is recorded
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert b"".join(response.streaming_content) == data[100:]  # type: ignore[attr-defined]
    assert _ranges_recorded() == [(0, 99), (100, len(data) - 1)]


@pytest.mark.parametrize(
    "if_range",
    [
        "another file's tag",
        "weak",
        "an HTTP-date",
        "not a tag",
        '"unterminated',
        '"a", "b"',
        "",
        '"' + "0" * 5000 + '"',
    ],
)
def test_an_if_range_that_does_not_match_gets_the_whole_file(
    client: Client, two_files: tuple[User, StoredFile, StoredFile, bytes], if_range: str
) -> None:
    # given a member resuming with a validator that is not this file's strong tag: the
    # other file's (same bytes, another file), this file's own tag made weak, a date
    # (downloads carry no Last-Modified), or something malformed
    member, stored, other, data = two_files
    value = {
        "another file's tag": file_etag(other),
        "weak": "W/" + file_etag(stored),
        "an HTTP-date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "not a tag": "abc",
    }.get(if_range, if_range)

    # when they ask for a part under that If-Range
    response = client.get(
        _download_url(stored),
        HTTP_RANGE="bytes=100-",
        HTTP_IF_RANGE=value,
        **_auth(member),  # type: ignore[arg-type]
    )

    # then the Range is ignored: the whole file, 200, no Content-Range, recorded as such
    assert response.status_code == 200
    assert not response.has_header("Content-Range")
    assert response["Content-Length"] == str(len(data))
    assert response["ETag"] == file_etag(stored)
    assert b"".join(response.streaming_content) == data  # type: ignore[attr-defined]
    assert _ranges_recorded() == [(0, len(data) - 1)]


@pytest.mark.parametrize("range_asked", ["past the end", None])
def test_a_stale_if_range_without_a_satisfiable_range_gets_the_whole_file(
    client: Client,
    two_files: tuple[User, StoredFile, StoredFile, bytes],
    range_asked: str | None,
) -> None:
    # given a client whose copy was of another, longer file
    member, stored, other, data = two_files
    headers = {"HTTP_IF_RANGE": file_etag(other)}
    if range_asked is not None:
        headers["HTTP_RANGE"] = f"bytes={len(data) + 10}-"

    # when it asks, under the other file's tag, for bytes past this file's end (or for
    # no range at all)
    response = client.get(_download_url(stored), **headers, **_auth(member))  # type: ignore[arg-type]

    # then the Range is ignored before it is judged (RFC 9110, section 13.1.5): the
    # whole file, never a 416
    assert response.status_code == 200
    assert not response.has_header("Content-Range")
    assert b"".join(response.streaming_content) == data  # type: ignore[attr-defined]
    assert _ranges_recorded() == [(0, len(data) - 1)]


def test_a_matching_if_range_with_an_unsatisfiable_range_is_still_416(
    client: Client, two_files: tuple[User, StoredFile, StoredFile, bytes]
) -> None:
    member, stored, _other, data = two_files

    response = client.get(
        _download_url(stored),
        HTTP_RANGE=f"bytes={len(data)}-",
        HTTP_IF_RANGE=file_etag(stored),
        **_auth(member),  # type: ignore[arg-type]
    )

    assert response.status_code == 416
    assert response.json()["code"] == "range_not_satisfiable"
    assert _ranges_recorded() == []


def test_if_range_bytes_no_text_can_hold_are_answered_not_failed(
    two_files: tuple[User, StoredFile, StoredFile, bytes],
) -> None:
    # given raw header bytes through the ASGI server (obs-text, a control character)
    member, stored, _other, data = two_files
    _row, secret = api_token_create(actor=member, name="c", scope=ApiToken.Scope.READ)
    tag = file_etag(stored)

    for raw in ('"\xff\xfe"', tag[:-1] + '\x01"', tag + "\xa0"):
        # when a part is asked for under it
        answer = call(
            "GET",
            _download_url(stored),
            headers={"Authorization": f"Bearer {secret}", "Range": "bytes=5-", "If-Range": raw},
        )

        # then the whole file, never a 500
        assert answer.status == 200
        assert answer.body == data


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (None, True),
        ('"abc"', True),
        ('  "abc"  ', True),
        ('W/"abc"', False),
        ('w/"abc"', False),
        ('"abd"', False),
        ('"ABC"', False),
        ("abc", False),
        ('"abc', False),
        ('"abc", "abc"', False),
        ("Wed, 21 Oct 2015 07:28:00 GMT", False),
        ("", False),
        ('"a"bc"', False),
    ],
)
def test_if_range_compares_strongly(value: str | None, allowed: bool) -> None:
    assert if_range_allows(value, '"abc"') is allowed
