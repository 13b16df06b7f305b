"""clamd over INSTREAM: a verdict per stream, and no verdict (never "clean") when it is down."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from pytest_django import Settings

from files.scanner import (
    ScannerUnavailable,
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
