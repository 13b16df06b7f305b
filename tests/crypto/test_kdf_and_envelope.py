"""HKDF known answer and label registry; the shared header and field encoding."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from safechat.crypto import labels
from safechat.crypto.envelope import (
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    encode_fields,
    parse_header,
)
from safechat.crypto.errors import MalformedError
from safechat.crypto.kdf import hkdf_sha256
from safechat.crypto.labels import HpkeInfo, KdfLabel, MacLabel, SignatureContext


def test_hkdf_sha256_matches_rfc5869_test_case_1() -> None:
    # given: RFC 5869 appendix A.1
    okm = HKDF(hashes.SHA256(), 42, bytes(range(13)), bytes(range(0xF0, 0xFA))).derive(b"\x0b" * 22)

    # then
    assert okm == bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_wrapper_feeds_label_and_context_as_framed_info() -> None:
    # given
    ikm = bytes(range(32))

    # when
    derived = hkdf_sha256(ikm, label=KdfLabel.DERIVED_KEY, context=b"ctx", salt=b"salt")

    # then
    info = encode_fields(KdfLabel.DERIVED_KEY.value, b"ctx")
    assert derived == HKDF(hashes.SHA256(), 32, b"salt", info).derive(ikm)


def test_hkdf_outputs_differ_per_label_and_context() -> None:
    ikm = bytes(32)
    outputs = {
        hkdf_sha256(ikm, label=label, context=context)
        for label in KdfLabel
        for context in (b"", b"a", b"b")
    }
    assert len(outputs) == len(KdfLabel) * 3


def test_hkdf_refuses_unregistered_labels_and_short_keys() -> None:
    with pytest.raises(TypeError):
        hkdf_sha256(bytes(32), label=b"safechat/v1/kdf/other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 32 bytes"):
        hkdf_sha256(bytes(16), label=KdfLabel.DERIVED_KEY)


def test_every_domain_separation_label_is_unique_and_versioned() -> None:
    # given: every label in every registry, plus the framing prefixes
    values = [
        *(label.value for label in KdfLabel),
        *(label.value for label in HpkeInfo),
        *(label.value for label in SignatureContext),
        *(label.value for label in MacLabel),
        labels.HPKE_INFO_PREFIX,
        labels.SIGNATURE_PREFIX,
        labels.MAC_PREFIX,
    ]

    # then
    assert len(values) == len(set(values))
    assert all(value.startswith(b"safechat/v1/") for value in values)


def test_a_header_round_trips_and_is_six_bytes() -> None:
    header = Header(ObjectType.AEAD_CIPHERTEXT, Algorithm.AES_256_GCM, KeyPurpose.ROOM_EPOCH)
    encoded = header.encode()
    assert encoded == b"SC\x01\x02\x01\x01"
    assert parse_header(encoded + b"rest", object_type=ObjectType.AEAD_CIPHERTEXT) == header


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"SC\x01\x02\x01",
        b"sc\x01\x02\x01\x01",
        b"SC\x00\x02\x01\x01",
        b"SC\x01\xff\x01\x01",
        b"SC\x01\x02\xff\x01",
        b"SC\x01\x02\x01\xff",
        b"SC\x01\x03\x02\x04",
    ],
)
def test_bad_headers_are_refused(blob: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_header(blob, object_type=ObjectType.AEAD_CIPHERTEXT)


def test_tag_values_are_unique_within_each_enum() -> None:
    for enum_type in (ObjectType, Algorithm, KeyPurpose):
        values = [member.value for member in enum_type]
        assert len(values) == len(set(values))
        assert all(0 < value < 256 for value in values)


@given(
    first=st.lists(st.binary(max_size=6), max_size=4),
    second=st.lists(st.binary(max_size=6), max_size=4),
)
def test_field_encoding_is_injective(first: list[bytes], second: list[bytes]) -> None:
    assert (encode_fields(*first) == encode_fields(*second)) == (first == second)


def test_field_encoding_separates_shifted_boundaries() -> None:
    splits = {encode_fields(b"abc"[:i], b"abc"[i:]) for i in range(4)}
    assert len(splits) == 4
