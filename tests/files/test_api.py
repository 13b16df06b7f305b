"""The files API: list, metadata with its download URL, ranged downloads, who gets 404."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiToken, User
from accounts.services.tokens import api_token_create
from audit.models import AuditEvent
from files.api.views import content_disposition, parse_range
from files.models import StoredFile
from rooms.services import membership_remove
from safechat.crypto.stream import DEFAULT_CHUNK_SIZE
from tests.accounts.factories import make_user
from tests.files.asgi_client import call
from tests.files.helpers import upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = DEFAULT_CHUNK_SIZE


def _bearer(user: User) -> dict[str, str]:
    _row, secret = api_token_create(actor=user, name="client", scope=ApiToken.Scope.READ)
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def shared(clamd: OwnClamd) -> tuple[User, User, StoredFile, bytes]:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    data = os.urandom(3 * CHUNK + 10)
    stored = upload_and_scan(actor=owner, room=room, data=data, name="Relevé 2026 «Q1».csv")
    return owner, member, stored, data


def _url(stored: StoredFile, suffix: str = "") -> str:
    return f"/api/v1/rooms/{stored.room_id}/files/{stored.uid}/{suffix}"


def test_members_list_files_and_see_metadata_with_a_download_url(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    _owner, member, stored, data = shared
    auth = _bearer(member)

    listing = client.get(f"/api/v1/rooms/{stored.room_id}/files/", **auth)  # type: ignore[arg-type]
    detail = client.get(_url(stored), **auth)  # type: ignore[arg-type]

    assert listing.status_code == 200
    assert listing.json()["has_more"] is False
    (item,) = listing.json()["results"]
    assert item == detail.json()
    assert item["name"] == "Relevé 2026 «Q1».csv"
    assert item["size"] == len(data)
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert item["download_url"].endswith(_url(stored, "download"))
    assert listing["Cache-Control"] == "no-store"


def test_the_file_list_pages_with_cursors_like_every_list(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    # given a room with three files (the list answered DRF's page numbers, which its
    # schema did not document; the API's contract run found it)
    owner, member, first, _data = shared
    room = first.room
    second = upload_and_scan(actor=owner, room=room, data=b"2" * 100, name="two.csv")
    third = upload_and_scan(actor=owner, room=room, data=b"3" * 100, name="three.csv")
    auth = _bearer(member)
    url = f"/api/v1/rooms/{room.pk}/files/"

    # when a member pages through them two at a time, newest first, then back
    page = client.get(url, {"limit": 2}, **auth).json()  # type: ignore[arg-type]
    older = client.get(url, {"before": page["next_before"]}, **auth).json()  # type: ignore[arg-type]
    newer = client.get(url, {"after": older["next_after"]}, **auth).json()  # type: ignore[arg-type]
    refused = client.get(url, {"limit": 0}, **auth)  # type: ignore[arg-type]

    # then each page holds what its cursor names, and a bad parameter is a 400
    def ids(answer: dict[str, Any]) -> list[str]:
        return [item["id"] for item in answer["results"]]

    assert ids(page) == [str(third.uid), str(second.uid)]
    assert (page["has_more"], page["next_after"]) == (True, None)
    assert ids(older) == [str(first.uid)]
    assert (older["has_more"], older["next_before"]) == (False, None)
    assert ids(newer) == [str(third.uid), str(second.uid)]
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["parameter"] == "limit"


def test_a_download_is_the_file_with_safe_headers_and_is_audited(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    _owner, member, stored, data = shared

    response = client.get(_url(stored, "download"), **_bearer(member))  # type: ignore[arg-type]

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data  # type: ignore[attr-defined]
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"].startswith("attachment; ")
    assert (
        "filename*=UTF-8''Relev%C3%A9%202026%20%C2%ABQ1%C2%BB.csv"
        in response["Content-Disposition"]
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    # a reverse proxy passes the plaintext through, never to a temporary file of its own
    assert response["X-Accel-Buffering"] == "no"
    assert AuditEvent.objects.filter(action="file.downloaded").count() == 1


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-0", 0, 0), (f"bytes={CHUNK - 2}-{CHUNK + 2}", CHUNK - 2, CHUNK + 2),
     (f"bytes={2 * CHUNK}-", 2 * CHUNK, 3 * CHUNK + 9), ("bytes=-5", 3 * CHUNK + 5, 3 * CHUNK + 9)],
)  # fmt: skip
def test_a_range_is_answered_206_with_exactly_those_bytes(
    client: Client,
    shared: tuple[User, User, StoredFile, bytes],
    header: str,
    first: int,
    last: int,
) -> None:
    _owner, member, stored, data = shared

    response = client.get(
        _url(stored, "download"),
        HTTP_RANGE=header,
        **_bearer(member),  # type: ignore[arg-type]
    )

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    assert b"".join(response.streaming_content) == data[first : last + 1]  # type: ignore[attr-defined]


def test_an_unsatisfiable_range_is_416(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    _owner, member, stored, data = shared

    response = client.get(
        _url(stored, "download"),
        HTTP_RANGE=f"bytes={len(data)}-",
        **_bearer(member),  # type: ignore[arg-type]
    )

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "range_not_satisfiable"


def test_strangers_and_removed_members_get_404_everywhere(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    owner, member, stored, _data = shared
    stranger = make_user()
    urls = [f"/api/v1/rooms/{stored.room_id}/files/", _url(stored), _url(stored, "download")]

    for url in urls:
        assert client.get(url, **_bearer(stranger)).status_code == 404  # type: ignore[arg-type]
    membership_remove(actor=owner, room=stored.room, member=member)
    for url in urls:
        assert client.get(url, **_bearer(member)).status_code == 404  # type: ignore[arg-type]
    assert not AuditEvent.objects.filter(action="file.downloaded").exists()


def test_a_download_through_the_asgi_server_streams_the_file(
    shared: tuple[User, User, StoredFile, bytes],
) -> None:
    _owner, member, stored, data = shared
    _row, secret = api_token_create(actor=member, name="c", scope=ApiToken.Scope.READ)

    answer = call("GET", _url(stored, "download"), headers={"Authorization": f"Bearer {secret}"})

    assert answer.status == 200
    assert answer.body == data


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=0-1000", (0, 99)),
        ("bytes=100-", False),
        ("bytes=-0", False),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
        # digits Python's isdigit() takes but int() refuses or reads otherwise: ignored
        ("bytes=\u00b2-4", None),
        ("bytes=\u0663-4", None),
        ("bytes=0-" + "9" * 5000, None),
    ],
)
def test_range_parsing(value: str | None, expected: Any) -> None:
    assert parse_range(value, 100) == expected


def test_content_disposition_has_a_safe_fallback_and_the_exact_name() -> None:
    header = content_disposition('a"b;c\\d é.pdf')

    assert (
        header
        == "attachment; filename=\"a_b_c_d _.pdf\"; filename*=UTF-8''a%22b%3Bc%5Cd%20%C3%A9.pdf"
    )


def test_a_download_of_a_file_whose_blob_is_missing_is_a_500_audited_and_sends_nothing(
    client: Client, shared: tuple[User, User, StoredFile, bytes], vault_dir: Any
) -> None:
    from files.blobs import segment_name

    _owner, member, stored, _data = shared
    (vault_dir / segment_name(stored.blob_prefix, stored.segment_starts[-1])).unlink()

    response = client.get(_url(stored, "download"), **_bearer(member))  # type: ignore[arg-type]

    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "integrity_failure"
    assert AuditEvent.objects.filter(action="file.integrity.failed").count() == 1
    assert not AuditEvent.objects.filter(action="file.downloaded").exists()


def test_sealed_metadata_moved_from_another_file_is_an_integrity_failure(
    client: Client, shared: tuple[User, User, StoredFile, bytes]
) -> None:
    owner, member, stored, _data = shared
    other = upload_and_scan(actor=owner, room=stored.room, data=b"other", name="other.txt")
    StoredFile.objects.filter(pk=stored.pk).update(sealed_metadata=other.sealed_metadata)

    response = client.get(_url(stored), **_bearer(member))  # type: ignore[arg-type]

    assert response.status_code == 500
    assert AuditEvent.objects.filter(action="file.integrity.failed").count() == 1
