"""Record MACs: deterministic, bound to their label and key purpose, and every byte counts."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from safechat.crypto import KeyPurpose, MacError, MacLabel, SymmetricKey, record_mac
from safechat.crypto.envelope import encode_fields
from safechat.crypto.errors import KeyPurposeError
from safechat.crypto.mac import record_mac_verify

KEY = SymmetricKey(bytes(range(32)), KeyPurpose.RECORD_MAC)


def test_the_mac_is_the_documented_hkdf_and_hmac_composition() -> None:
    # given the layout of docs/security-crypto.md, computed with bare primitives
    label = MacLabel.SEALED_EPOCH_KEY
    info = encode_fields(b"safechat/v1/kdf/record-mac", label.value)
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        bytes(range(32))
    )
    expected = hmac.new(
        mac_key, encode_fields(b"safechat/v1/mac", label.value, b"record"), hashlib.sha256
    ).digest()

    # then
    assert record_mac(KEY, b"record", label=label) == expected


def test_every_changed_byte_and_another_label_fail() -> None:
    mac = record_mac(KEY, b"user 7 public key", label=MacLabel.USER_PUBLIC_KEY)
    record_mac_verify(KEY, b"user 7 public key", mac, label=MacLabel.USER_PUBLIC_KEY)
    for index in range(len(mac)):
        tampered = bytearray(mac)
        tampered[index] ^= 1
        with pytest.raises(MacError):
            record_mac_verify(
                KEY, b"user 7 public key", bytes(tampered), label=MacLabel.USER_PUBLIC_KEY
            )
    with pytest.raises(MacError):
        record_mac_verify(KEY, b"user 8 public key", mac, label=MacLabel.USER_PUBLIC_KEY)
    with pytest.raises(MacError):
        record_mac_verify(KEY, b"user 7 public key", mac, label=MacLabel.COMPLIANCE_PUBLIC_KEY)


def test_only_a_record_mac_key_makes_a_mac() -> None:
    with pytest.raises(KeyPurposeError):
        record_mac(
            SymmetricKey(bytes(32), KeyPurpose.ROOM_EPOCH), b"x", label=MacLabel.USER_PUBLIC_KEY
        )
