"""HPKE with ML-KEM-768 + X25519: published vectors, wire-format interop, misuse refusals.

About known answers: ``cryptography``'s HPKE encryption draws its ephemeral key internally
and offers no way to inject one, so *encryption* KATs are impossible. Decryption KATs are
possible: published vectors fix the recipient key, ``enc`` and ``ct``. Every published base-mode
vector has a non-empty aad ("Count-0"), and the public single-shot API has no aad parameter,
so those tests call ``_decrypt_with_aad``, the test-only binding ``cryptography`` itself uses
for these vectors. Production code never calls it. Our own sealing is then pinned by interop
tests: a blob from ``seal`` opens with the bare library given the documented ``info``.
"""

from __future__ import annotations

import pickle

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke as lib_hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from safechat.crypto import hpke
from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import KeyPurpose, encode_fields
from safechat.crypto.errors import CryptoError, DecryptionError, KeyPurposeError, MalformedError
from safechat.crypto.hpke import HpkePrivateKey, HpkePublicKey, open_key, seal, seal_key
from safechat.crypto.labels import HpkeInfo
from tests.crypto import vectors

INFO = HpkeInfo.ROOM_EPOCH_KEY
USER = KeyPurpose.USER_HPKE


@pytest.fixture(scope="module")
def user_key() -> HpkePrivateKey:
    return HpkePrivateKey.generate(USER)


# --- published vectors ---------------------------------------------------------------------


def test_library_hpke_matches_rfc9180_a1_base_vector() -> None:
    # given: RFC 9180 A.1.1 recipient key and sequence-0 ciphertext
    suite = lib_hpke.Suite(lib_hpke.KEM.X25519, lib_hpke.KDF.HKDF_SHA256, lib_hpke.AEAD.AES_128_GCM)
    recipient = x25519.X25519PrivateKey.from_private_bytes(vectors.RFC9180_A1_SKRM)

    # when
    plaintext = rust_openssl.hpke._decrypt_with_aad(
        suite,
        vectors.RFC9180_A1_ENC + vectors.RFC9180_A1_CT,
        recipient,
        info=vectors.RFC9180_A1_INFO,
        aad=vectors.RFC9180_A1_AAD,
    )

    # then
    assert recipient.public_key().public_bytes_raw() == vectors.RFC9180_A1_PKRM
    assert plaintext == vectors.RFC9180_A1_PT


def test_our_private_key_format_and_kem_match_the_hpke_pq_mlkem768_x25519_vector() -> None:
    # given: the draft's 32-byte recipient seed, loaded through *our* private key format
    private_key = HpkePrivateKey(vectors.PQ_A5_SKRM, USER)
    suite = lib_hpke.Suite(
        lib_hpke.KEM.MLKEM768_X25519, lib_hpke.KDF.HKDF_SHA256, lib_hpke.AEAD.CHACHA20_POLY1305
    )

    # when
    plaintext = rust_openssl.hpke._decrypt_with_aad(
        suite,
        vectors.PQ_A5_ENC + vectors.PQ_A5_CT,
        private_key._key,
        info=vectors.PQ_A5_INFO,
        aad=vectors.PQ_A5_AAD,
    )

    # then: seed expansion gives the published public key, and the KEM decapsulates correctly
    assert private_key.public_key().to_bytes()[6:] == vectors.PQ_A5_PKRM
    assert plaintext == vectors.PQ_A5_PT
    assert hpke.ENC_LEN == len(vectors.PQ_A5_ENC) == 1120


# --- our wire format -----------------------------------------------------------------------


def test_a_sealed_blob_opens_with_the_bare_library_and_the_documented_info(
    user_key: HpkePrivateKey,
) -> None:
    # given
    aad = b"room 7 / epoch 3 / member 42"
    blob = seal(user_key.public_key(), b"epoch key bytes", info=INFO, aad=aad)
    header = b"SC\x01\x05\x02\x04"

    # when: decrypt with nothing but cryptography and the documented info layout
    library_info = encode_fields(b"safechat/v1/hpke", header, INFO.value, aad)
    plaintext = hpke.SUITE.decrypt(blob[6:], user_key._key, info=library_info)

    # then
    assert blob[:6] == header
    assert plaintext == b"epoch key bytes"
    assert len(blob) == 6 + 1120 + len(b"epoch key bytes") + 16


def test_a_blob_sealed_by_the_bare_library_opens_with_open(user_key: HpkePrivateKey) -> None:
    # given: a peer implementation that follows docs/security-crypto.md
    header = b"SC\x01\x05\x02\x04"
    library_info = encode_fields(b"safechat/v1/hpke", header, INFO.value, b"aad")
    public = lib_hpke.MLKEM768X25519PublicKey
    assert isinstance(user_key.public_key()._key, public)
    sealed = hpke.SUITE.encrypt(b"from a peer", user_key.public_key()._key, info=library_info)

    # when
    plaintext = hpke.open(user_key, header + sealed, info=INFO, aad=b"aad")

    # then
    assert plaintext == b"from a peer"


def test_public_key_bytes_are_the_standard_encoding(user_key: HpkePrivateKey) -> None:
    # given
    public = user_key.public_key()

    # when
    reloaded = HpkePublicKey.from_bytes(public.to_bytes(), purpose=USER)

    # then: header || ML-KEM-768 encapsulation key (1184) || X25519 (32)
    assert len(public.to_bytes()) == 6 + 1184 + 32
    assert reloaded == public
    assert len(public.fingerprint()) == 64


# --- round trips ---------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_seal_then_open_returns_the_plaintext(plaintext: bytes, aad: bytes) -> None:
    # given
    private_key = HpkePrivateKey.generate(KeyPurpose.COMPLIANCE_HPKE)
    reloaded = HpkePrivateKey.from_bytes(private_key.to_bytes(), purpose=KeyPurpose.COMPLIANCE_HPKE)
    public = HpkePublicKey.from_bytes(
        private_key.public_key().to_bytes(), purpose=KeyPurpose.COMPLIANCE_HPKE
    )

    # when
    blob = seal(public, plaintext, info=INFO, aad=aad)

    # then
    assert hpke.open(reloaded, blob, info=INFO, aad=aad) == plaintext


def test_each_seal_uses_a_fresh_encapsulation(user_key: HpkePrivateKey) -> None:
    blobs = {seal(user_key.public_key(), b"same", info=INFO, aad=b"") for _ in range(5)}
    assert len(blobs) == 5


def test_a_room_key_sealed_to_a_member_comes_back_as_a_room_key(user_key: HpkePrivateKey) -> None:
    # given
    epoch_key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    blob = seal_key(user_key.public_key(), epoch_key, info=INFO, aad=b"room 7 epoch 3")

    # when
    opened = open_key(
        user_key, blob, info=INFO, aad=b"room 7 epoch 3", purpose=KeyPurpose.ROOM_EPOCH
    )

    # then
    assert opened.same_material(epoch_key)
    with pytest.raises(KeyPurposeError):
        open_key(user_key, blob, info=INFO, aad=b"room 7 epoch 3", purpose=KeyPurpose.FILE)


# --- tampering and binding -----------------------------------------------------------------


def test_flipping_any_single_byte_of_a_sealed_blob_is_detected(user_key: HpkePrivateKey) -> None:
    # given
    blob = seal(user_key.public_key(), b"k" * 38, info=INFO, aad=b"ad")

    # when / then
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(CryptoError):
            hpke.open(user_key, bytes(tampered), info=INFO, aad=b"ad")


def test_wrong_aad_info_or_recipient_fails(user_key: HpkePrivateKey) -> None:
    # given
    blob = seal(user_key.public_key(), b"secret", info=INFO, aad=b"room 7")
    stranger = HpkePrivateKey.generate(USER)

    # when / then
    with pytest.raises(DecryptionError):
        hpke.open(user_key, blob, info=INFO, aad=b"room 8")
    with pytest.raises(DecryptionError):
        hpke.open(user_key, blob, info=HpkeInfo.COMPLIANCE_EXPORT_KEY, aad=b"room 7")
    with pytest.raises(DecryptionError):
        hpke.open(stranger, blob, info=INFO, aad=b"room 7")


def test_truncated_blobs_are_refused(user_key: HpkePrivateKey) -> None:
    blob = seal(user_key.public_key(), b"secret", info=INFO, aad=b"")
    for length in (0, 5, 6, 100, 6 + 1120, 6 + 1120 + 15, len(blob) - 1):
        with pytest.raises(CryptoError):
            hpke.open(user_key, blob[:length], info=INFO, aad=b"")


# --- key types and purposes ----------------------------------------------------------------


def test_a_blob_sealed_to_a_user_key_is_refused_by_a_compliance_key() -> None:
    # given: the same seed tagged with two purposes
    seed = bytes(range(32))
    user = HpkePrivateKey(seed, KeyPurpose.USER_HPKE)
    compliance = HpkePrivateKey(seed, KeyPurpose.COMPLIANCE_HPKE)
    blob = seal(user.public_key(), b"secret", info=INFO, aad=b"")

    # when / then: refused by tag, and relabelling the header breaks the HPKE key schedule
    with pytest.raises(KeyPurposeError):
        hpke.open(compliance, blob, info=INFO, aad=b"")
    relabelled = blob[:5] + bytes((KeyPurpose.COMPLIANCE_HPKE,)) + blob[6:]
    with pytest.raises(DecryptionError):
        hpke.open(compliance, relabelled, info=INFO, aad=b"")


def test_keys_tagged_for_another_purpose_are_refused(user_key: HpkePrivateKey) -> None:
    with pytest.raises(KeyPurposeError):
        HpkePrivateKey.from_bytes(user_key.to_bytes(), purpose=KeyPurpose.COMPLIANCE_HPKE)
    with pytest.raises(KeyPurposeError):
        HpkePublicKey.from_bytes(
            user_key.public_key().to_bytes(), purpose=KeyPurpose.COMPLIANCE_HPKE
        )
    with pytest.raises(KeyPurposeError):
        HpkePrivateKey.generate(KeyPurpose.ROOM_EPOCH)
    with pytest.raises(MalformedError):
        HpkePrivateKey.from_bytes(user_key.public_key().to_bytes(), purpose=USER)


def test_objects_that_are_not_hpke_keys_are_refused(user_key: HpkePrivateKey) -> None:
    symmetric = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    with pytest.raises(KeyPurposeError):
        seal(symmetric, b"x", info=INFO, aad=b"")  # type: ignore[arg-type]
    with pytest.raises(KeyPurposeError):
        hpke.open(user_key.public_key(), b"x", info=INFO, aad=b"")  # type: ignore[arg-type]


def test_info_must_be_a_registered_label(user_key: HpkePrivateKey) -> None:
    with pytest.raises(TypeError):
        seal(user_key.public_key(), b"x", info=b"free text", aad=b"")  # type: ignore[arg-type]


def test_a_malformed_public_key_is_refused() -> None:
    header = b"SC\x01\x03\x02\x04"
    with pytest.raises(MalformedError):
        HpkePublicKey.from_bytes(header + b"\x00" * 100, purpose=USER)


def test_private_keys_never_pickle_or_print_material(user_key: HpkePrivateKey) -> None:
    assert repr(user_key) == "HpkePrivateKey(purpose=USER_HPKE)"
    with pytest.raises(TypeError):
        pickle.dumps(user_key)
