"""Ed25519 signatures: RFC 8032 known answer, format, domain separation, purposes."""

from __future__ import annotations

import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from safechat.crypto.envelope import KeyPurpose, encode_fields
from safechat.crypto.errors import CryptoError, KeyPurposeError, MalformedError, SignatureError
from safechat.crypto.labels import SignatureContext
from safechat.crypto.signing import SigningKey, VerifyKey, sign, verify

AUDIT = KeyPurpose.AUDIT_SIGNING
CHECKPOINT = SignatureContext.AUDIT_CHECKPOINT
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")


def test_ed25519_matches_rfc8032_test_1() -> None:
    # given: RFC 8032 section 7.1, TEST 1 (empty message)
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)

    # when
    signature = key.sign(b"")

    # then
    assert key.public_key().public_bytes_raw() == bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert signature == bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_a_signature_is_the_documented_layout() -> None:
    # given: the RFC key as our audit signing key
    key = SigningKey(RFC8032_SECRET, AUDIT)
    header = b"SC\x01\x08\x03\x06"

    # when
    signature = sign(key, b"chain head 42", context=CHECKPOINT)

    # then: header || Ed25519(prefix, header, context, message), deterministic
    framed = encode_fields(b"safechat/v1/sig", header, CHECKPOINT.value, b"chain head 42")
    raw = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET).sign(framed)
    assert signature == header + raw


@settings(max_examples=50, deadline=None)
@given(message=st.binary(max_size=1024))
def test_sign_then_verify_accepts(message: bytes) -> None:
    key = SigningKey.generate(AUDIT)
    public = VerifyKey.from_bytes(key.public_key().to_bytes(), purpose=AUDIT)
    verify(public, message, sign(key, message, context=CHECKPOINT), context=CHECKPOINT)


def test_a_reloaded_signing_key_signs_identically() -> None:
    key = SigningKey.generate(AUDIT)
    reloaded = SigningKey.from_bytes(key.to_bytes(), purpose=AUDIT)
    assert sign(reloaded, b"m", context=CHECKPOINT) == sign(key, b"m", context=CHECKPOINT)
    assert reloaded.public_key() == key.public_key()


def test_any_changed_byte_of_message_or_signature_fails() -> None:
    # given
    key = SigningKey.generate(AUDIT)
    message = b"entries 1..1000, head 9f86d081"
    signature = sign(key, message, context=CHECKPOINT)

    # when / then
    for position in range(len(signature)):
        tampered = bytearray(signature)
        tampered[position] ^= 0x01
        with pytest.raises(CryptoError):
            verify(key.public_key(), message, bytes(tampered), context=CHECKPOINT)
    for position in range(len(message)):
        changed = bytearray(message)
        changed[position] ^= 0x01
        with pytest.raises(SignatureError):
            verify(key.public_key(), bytes(changed), signature, context=CHECKPOINT)


def test_a_checkpoint_signature_does_not_verify_as_an_export_manifest() -> None:
    key = SigningKey.generate(AUDIT)
    signature = sign(key, b"m", context=CHECKPOINT)
    with pytest.raises(SignatureError):
        verify(key.public_key(), b"m", signature, context=SignatureContext.EXPORT_MANIFEST)


def test_keys_of_another_purpose_are_refused() -> None:
    # given: the same seed as an audit key and as an export key
    audit = SigningKey(RFC8032_SECRET, AUDIT)
    export = SigningKey(RFC8032_SECRET, KeyPurpose.EXPORT_SIGNING)
    signature = sign(audit, b"m", context=CHECKPOINT)

    # when / then
    with pytest.raises(KeyPurposeError):
        verify(export.public_key(), b"m", signature, context=CHECKPOINT)
    relabelled = signature[:5] + bytes((KeyPurpose.EXPORT_SIGNING,)) + signature[6:]
    with pytest.raises(SignatureError):
        verify(export.public_key(), b"m", relabelled, context=CHECKPOINT)
    with pytest.raises(KeyPurposeError):
        SigningKey.from_bytes(audit.to_bytes(), purpose=KeyPurpose.EXPORT_SIGNING)
    with pytest.raises(KeyPurposeError):
        SigningKey.generate(KeyPurpose.ROOM_EPOCH)
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes(audit.to_bytes(), purpose=AUDIT)


def test_signing_keys_never_pickle_or_print_material() -> None:
    key = SigningKey(RFC8032_SECRET, AUDIT)
    assert repr(key) == "SigningKey(purpose=AUDIT_SIGNING)"
    with pytest.raises(TypeError):
        pickle.dumps(key)
