"""clamd over INSTREAM: a verdict per stream, and no verdict (never "clean") when it is down."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from pytest_django import Settings

from files.scanner import (
    MAX_PIECE,
    ScannerUnavailable,
    _instream_chunks,
    clamd_configured,
    clamd_ping,
    parse_instream_reply,
    scan_stream,
)
from tests.support.clamd import EICAR_SIGNATURE_NAME, OwnClamd, eicar


def test_clamd_answers_ping(clamd: OwnClamd) -> None:
    clamd_ping()


def test_a_clean_stream_is_clean(clamd: OwnClamd) -> None:
    verdict = scan_stream([b"a contract", b" of no consequence" * 1000])

    assert verdict.clean
    assert verdict.signature == ""


def test_eicar_is_found_even_when_it_arrives_in_pieces(clamd: OwnClamd) -> None:
    # given the EICAR file split across three pieces, as chunks of a stream are
    sample = eicar()
    pieces = [sample[:10], sample[10:40], sample[40:]]

    verdict = scan_stream(pieces)

    assert not verdict.clean
    assert verdict.signature.startswith(EICAR_SIGNATURE_NAME)


def test_a_stream_larger_than_one_piece_is_sent_in_pieces(clamd: OwnClamd) -> None:
    verdict = scan_stream([b"\0" * (3 * 1024 * 1024 + 7)])

    assert verdict.clean


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0, 0],
        [65536] * 40,
        [65536] * 16,
        [MAX_PIECE + 1],
        [3 * MAX_PIECE + 7, 0, 5],
        [1, MAX_PIECE - 1, 2, 0, MAX_PIECE],
    ],
)
def test_pieces_are_recut_into_full_chunks_none_empty(sizes: list[int]) -> None:
    # given the pieces a decryption yields (STREAM chunks of 64 KiB, a short last one)
    pieces = [bytes([n % 251]) * size for n, size in enumerate(sizes)]

    # when they are cut into INSTREAM chunks
    chunks = list(_instream_chunks(pieces))

    # then every byte is sent once, in order, in chunks of MAX_PIECE bytes but the last,
    # and no chunk is empty (an empty one would end the stream early)
    assert b"".join(chunks) == b"".join(pieces)
    assert all(len(chunk) == MAX_PIECE for chunk in chunks[:-1])
    assert all(0 < len(chunk) <= MAX_PIECE for chunk in chunks)


def test_an_unreachable_clamd_gives_no_verdict(settings: Settings, tmp_path: Path) -> None:
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "absent.sock")

    with pytest.raises(ScannerUnavailable):
        scan_stream([b"anything"])
    with pytest.raises(ScannerUnavailable):
        clamd_ping()


def test_no_clamd_configured_gives_no_verdict() -> None:
    assert not clamd_configured()
    with pytest.raises(ScannerUnavailable):
        scan_stream([b"anything"])


@pytest.mark.parametrize(
    "reply",
    ["INSTREAM size limit exceeded. ERROR", "stream: lstat() failed ERROR", "", "stream:"],
)
def test_a_reply_that_is_not_a_verdict_is_no_verdict(reply: str) -> None:
    with pytest.raises(ScannerUnavailable):
        parse_instream_reply(reply)


@pytest.mark.django_db
def test_readyz_reports_a_configured_clamd(client: Client, clamd: OwnClamd) -> None:
    response = client.get("/readyz")

    assert response.json()["checks"]["clamd"] == {"ok": True}


@pytest.mark.django_db
def test_readyz_reports_a_configured_clamd_that_is_down(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    settings.SAFECHAT_CLAMD_SOCKET = str(tmp_path / "absent.sock")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["clamd"] == {"ok": False, "error": "ScannerUnavailable"}


@pytest.mark.django_db
def test_readyz_leaves_out_an_unconfigured_clamd(client: Client) -> None:
    response = client.get("/readyz")

    assert "clamd" not in response.json()["checks"]
