"""AES-256-GCM messages: known answers, format, round trips, and every way to misuse a blob."""

from __future__ import annotations

import enum
import pickle
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from safechat.crypto import aead
from safechat.crypto.aead import (
    SymmetricKey,
    associated_data,
    decrypt,
    derive_key,
    encrypt,
    unwrap_key,
    wrap_key,
)
from safechat.crypto.envelope import KeyPurpose
from safechat.crypto.errors import (
    CryptoError,
    DecryptionError,
    KeyPurposeError,
    MalformedError,
)
from safechat.crypto.labels import AdPurpose


def _message_ad(**overrides: int) -> bytes:
    fields = {"room_id": 7, "message_id": 1001, "epoch": 3, "sender_id": 42} | overrides
    return associated_data(purpose=AdPurpose.MESSAGE, **fields)


# --- known answers for the primitive --------------------------------------------------------


def test_aes256gcm_matches_gcm_spec_test_case_16() -> None:
    # given: McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16 (AES-256,
    # 60-byte plaintext, 20-byte AAD), also in NIST's GCM validation examples
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    nonce = bytes.fromhex("cafebabefacedbaddecaf888")
    plaintext = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    expected = bytes.fromhex(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"
    )

    # when
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, aad)

    # then
    assert ciphertext == expected
    assert AESGCM(key).decrypt(nonce, ciphertext, aad) == plaintext


def test_aes256gcm_matches_nist_cavp_empty_message_vector() -> None:
    # given: NIST CAVP gcmEncryptExtIV256.rsp, [Keylen=256, IVlen=96, PTlen=0, AADlen=0], Count 0
    key = bytes.fromhex("b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4")
    nonce = bytes.fromhex("516c33929df5a3284ff463d7")

    # when
    tag = AESGCM(key).encrypt(nonce, b"", None)

    # then
    assert tag == bytes.fromhex("bdc1ac884d332457a1d2664f168c76f0")


def test_encrypt_output_is_the_documented_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a fixed key and nonce, so the output is determined by the format alone
    material = bytes(range(32))
    nonce = bytes.fromhex("000102030405060708090a0b")
    monkeypatch.setattr(aead, "generate_nonce", lambda: nonce)
    key = SymmetricKey(material, KeyPurpose.ROOM_EPOCH)
    ad = _message_ad()

    # when
    blob = encrypt(key, b"hello", aad=ad)

    # then: header || nonce || AES-GCM(HKDF subkey, nonce, pt, header || ad)
    header = b"SC\x01\x02\x01\x01"
    info = b"\x00\x00\x00\x1bsafechat/v1/kdf/aead-subkey" + b"\x00\x00\x00\x01\x01"
    subkey = HKDF(hashes.SHA256(), 32, None, info).derive(material)
    assert blob == header + nonce + AESGCM(subkey).encrypt(nonce, b"hello", header + ad)


# --- round trips ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.binary(max_size=4096),
    purpose=st.sampled_from([KeyPurpose.ROOM_EPOCH, KeyPurpose.FILE, KeyPurpose.MASTER_WRAP]),
    room_id=st.integers(),
    sender=st.text(),
)
def test_encrypt_then_decrypt_returns_the_plaintext(
    plaintext: bytes, purpose: KeyPurpose, room_id: int, sender: str
) -> None:
    # given
    key = SymmetricKey.generate(purpose)
    ad = associated_data(purpose=AdPurpose.MESSAGE, room_id=room_id, sender_id=sender)

    # when
    blob = encrypt(key, plaintext, aad=ad)

    # then
    assert decrypt(key, blob, aad=ad) == plaintext
    assert len(blob) == 6 + 12 + len(plaintext) + 16


def test_a_reloaded_key_decrypts_what_the_original_encrypted() -> None:
    # given
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    blob = encrypt(key, b"minutes of the credit committee", aad=_message_ad())

    # when
    reloaded = SymmetricKey.from_bytes(key.to_bytes(), purpose=KeyPurpose.ROOM_EPOCH)

    # then
    assert reloaded.same_material(key)
    assert decrypt(reloaded, blob, aad=_message_ad()) == b"minutes of the credit committee"


# --- tampering and binding -----------------------------------------------------------------


def test_flipping_any_single_byte_of_a_ciphertext_is_detected() -> None:
    # given
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    ad = _message_ad()
    blob = encrypt(key, b"transfer 1,000,000 EUR to account 1234", aad=ad)

    # when / then: every position, two different bit patterns
    for position in range(len(blob)):
        for mask in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[position] ^= mask
            with pytest.raises(CryptoError):
                decrypt(key, bytes(tampered), aad=ad)


def test_truncated_or_extended_ciphertexts_are_refused() -> None:
    # given
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    blob = encrypt(key, b"payload", aad=b"")

    # when / then
    for length in range(len(blob)):
        with pytest.raises(CryptoError):
            decrypt(key, blob[:length], aad=b"")
    with pytest.raises(CryptoError):
        decrypt(key, blob + b"\x00", aad=b"")


@pytest.mark.parametrize(
    "changed",
    [{"room_id": 8}, {"message_id": 1002}, {"epoch": 4}, {"sender_id": 43}],
)
def test_a_ciphertext_moved_to_another_room_message_epoch_or_sender_fails(
    changed: dict[str, int],
) -> None:
    # given
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    blob = encrypt(key, b"hello", aad=_message_ad())

    # when / then
    with pytest.raises(DecryptionError):
        decrypt(key, blob, aad=_message_ad(**changed))


def test_a_different_key_cannot_decrypt() -> None:
    # given
    blob = encrypt(SymmetricKey.generate(KeyPurpose.ROOM_EPOCH), b"hello", aad=b"ad")

    # when / then
    with pytest.raises(DecryptionError):
        decrypt(SymmetricKey.generate(KeyPurpose.ROOM_EPOCH), blob, aad=b"ad")


# --- key types and purposes ----------------------------------------------------------------


def test_a_key_of_another_purpose_is_refused_even_with_the_same_bytes() -> None:
    # given: the same 32 bytes loaded as a ROOM_EPOCH key and as a FILE key
    material = bytes(range(32))
    room_key = SymmetricKey(material, KeyPurpose.ROOM_EPOCH)
    file_key = SymmetricKey(material, KeyPurpose.FILE)
    blob = encrypt(room_key, b"hello", aad=b"ad")

    # when / then: refused by tag ...
    with pytest.raises(KeyPurposeError):
        decrypt(file_key, blob, aad=b"ad")
    # ... and relabelling the header does not help: the GCM subkeys differ per purpose
    relabelled = blob[:5] + bytes((KeyPurpose.FILE,)) + blob[6:]
    with pytest.raises(DecryptionError):
        decrypt(file_key, relabelled, aad=b"ad")


def test_a_serialised_key_is_refused_for_another_purpose() -> None:
    # given
    serialized = SymmetricKey.generate(KeyPurpose.FILE).to_bytes()

    # when / then
    with pytest.raises(KeyPurposeError):
        SymmetricKey.from_bytes(serialized, purpose=KeyPurpose.ROOM_EPOCH)


@pytest.mark.parametrize(
    "purpose", [KeyPurpose.USER_HPKE, KeyPurpose.COMPLIANCE_HPKE, KeyPurpose.AUDIT_SIGNING]
)
def test_a_symmetric_key_cannot_have_an_asymmetric_purpose(purpose: KeyPurpose) -> None:
    with pytest.raises(KeyPurposeError):
        SymmetricKey.generate(purpose)


def test_something_that_is_not_a_symmetric_key_is_refused() -> None:
    with pytest.raises(KeyPurposeError):
        encrypt(b"\x00" * 32, b"hello", aad=b"")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blob", "error"),
    [
        (b"", MalformedError),
        (b"XX\x01\x01\x01\x01" + bytes(32), MalformedError),  # foreign magic
        (b"SC\x02\x01\x01\x01" + bytes(32), MalformedError),  # unknown format version
        (b"SC\x01\x02\x01\x01" + bytes(32), MalformedError),  # a ciphertext, not a key
        (b"SC\x01\x01\x09\x01" + bytes(32), MalformedError),  # unknown algorithm
        (b"SC\x01\x01\x01\x01" + bytes(31), MalformedError),  # short key
    ],
)
def test_malformed_serialised_keys_are_refused(blob: bytes, error: type[CryptoError]) -> None:
    with pytest.raises(error):
        SymmetricKey.from_bytes(blob, purpose=KeyPurpose.ROOM_EPOCH)


def test_keys_never_show_or_pickle_their_material() -> None:
    # given
    key = SymmetricKey(b"\xaa" * 32, KeyPurpose.ROOM_EPOCH)

    # when / then
    assert "aa" not in repr(key).lower()
    assert repr(key) == "SymmetricKey(purpose=ROOM_EPOCH)"
    with pytest.raises(TypeError):
        pickle.dumps(key)


# --- key wrapping and derivation -----------------------------------------------------------


def test_a_file_key_wrapped_under_an_epoch_key_comes_back_with_its_purpose() -> None:
    # given
    epoch_key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    file_key = SymmetricKey.generate(KeyPurpose.FILE)
    ad = associated_data(purpose=AdPurpose.FILE_KEY, room_id=7, file_id=uuid.uuid4(), epoch=3)

    # when
    wrapped = wrap_key(epoch_key, file_key, aad=ad)

    # then
    assert unwrap_key(epoch_key, wrapped, aad=ad, purpose=KeyPurpose.FILE).same_material(file_key)
    with pytest.raises(KeyPurposeError):
        unwrap_key(epoch_key, wrapped, aad=ad, purpose=KeyPurpose.MASTER_WRAP)


def test_a_wrapped_key_and_a_message_cannot_be_swapped() -> None:
    # given: a message whose plaintext looks exactly like a serialised key
    epoch_key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    file_key = SymmetricKey.generate(KeyPurpose.FILE)
    message = encrypt(epoch_key, file_key.to_bytes(), aad=b"ad")
    wrapped = wrap_key(epoch_key, file_key, aad=b"ad")

    # when / then
    with pytest.raises(MalformedError):
        unwrap_key(epoch_key, message, aad=b"ad", purpose=KeyPurpose.FILE)
    with pytest.raises(MalformedError):
        decrypt(epoch_key, wrapped, aad=b"ad")


def test_derived_keys_are_deterministic_and_separated_by_context() -> None:
    # given
    parent = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)

    # when
    first = derive_key(parent, purpose=KeyPurpose.FILE, context=b"file-1")
    again = derive_key(parent, purpose=KeyPurpose.FILE, context=b"file-1")
    other = derive_key(parent, purpose=KeyPurpose.FILE, context=b"file-2")

    # then
    assert first.same_material(again)
    assert not first.same_material(other)
    assert first.purpose is KeyPurpose.FILE


# --- nonces --------------------------------------------------------------------------------


def test_a_million_nonces_under_one_key_are_unique() -> None:
    # given: nonces made exactly the way encrypt makes them
    count = 1_000_000

    # when
    nonces = {aead.generate_nonce() for _ in range(count)}

    # then
    assert len(nonces) == count
    assert all(len(nonce) == 12 for nonce in list(nonces)[:1000])


def test_encrypt_takes_its_nonce_from_generate_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    produced: list[bytes] = []
    real = aead.generate_nonce

    def spy() -> bytes:
        produced.append(real())
        return produced[-1]

    monkeypatch.setattr(aead, "generate_nonce", spy)
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)

    # when
    blobs = [encrypt(key, b"same message", aad=b"same ad") for _ in range(3)]

    # then
    assert [blob[6:18] for blob in blobs] == produced
    assert len(set(blobs)) == 3


# --- associated data -----------------------------------------------------------------------


def test_associated_data_does_not_depend_on_field_order() -> None:
    first = associated_data(purpose=AdPurpose.MESSAGE, room_id=1, message_id=2, epoch=3)
    second = associated_data(epoch=3, message_id=2, room_id=1, purpose=AdPurpose.MESSAGE)
    assert first == second


def test_associated_data_keeps_types_apart() -> None:
    as_int = associated_data(purpose=AdPurpose.MESSAGE, room_id=1)
    as_str = associated_data(purpose=AdPurpose.MESSAGE, room_id="1")
    as_bytes = associated_data(purpose=AdPurpose.MESSAGE, room_id=b"1")
    assert len({as_int, as_str, as_bytes}) == 3


@pytest.mark.parametrize("value", [None, True, 1.5, [1]])
def test_associated_data_refuses_ambiguous_values(value: object) -> None:
    with pytest.raises(TypeError):
        associated_data(purpose=AdPurpose.MESSAGE, room_id=value)  # type: ignore[arg-type]


_ad_values = st.one_of(st.integers(), st.text(max_size=8), st.binary(max_size=8), st.uuids())


@settings(max_examples=300, deadline=None)
@given(
    first=st.dictionaries(st.text(min_size=1, max_size=6), _ad_values, max_size=4),
    second=st.dictionaries(st.text(min_size=1, max_size=6), _ad_values, max_size=4),
)
def test_associated_data_is_injective(
    first: dict[str, aead.AdValue], second: dict[str, aead.AdValue]
) -> None:
    # given: two sets of fields (purpose is a separate keyword)
    first.pop("purpose", None)
    second.pop("purpose", None)

    def canonical(fields: dict[str, aead.AdValue]) -> set[tuple[str, type, object]]:
        return {(name, type(value), value) for name, value in fields.items()}

    # when
    encoded_first = associated_data(purpose="p", **first)
    encoded_second = associated_data(purpose="p", **second)

    # then: equal encodings only for equal (name, type, value) sets
    assert (encoded_first == encoded_second) == (canonical(first) == canonical(second))


def test_enum_members_encode_like_their_values() -> None:
    # given
    class Role(enum.IntEnum):
        MEMBER = 5

    # when / then: StrEnum and IntEnum members are their value, not their name
    assert associated_data(purpose=AdPurpose.MESSAGE, role=Role.MEMBER) == associated_data(
        purpose="message", role=5
    )
    with pytest.raises(TypeError):
        associated_data(purpose=7)  # type: ignore[arg-type]
