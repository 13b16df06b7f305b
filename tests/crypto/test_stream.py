"""STREAM file encryption: round trips, every structural attack, and bounded memory."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safechat.crypto import stream
from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import KeyPurpose
from safechat.crypto.errors import (
    CryptoError,
    DecryptionError,
    KeyPurposeError,
    MalformedError,
    StreamStateError,
)
from safechat.crypto.stream import (
    STREAM_HEADER_LEN,
    TAG_LEN,
    StreamDecryptor,
    StreamEncryptor,
    ciphertext_length,
    decrypt_bytes,
    encrypt_bytes,
    iter_decrypt,
    iter_encrypt,
)

CHUNK = 64
AAD = b"room 7 / file 99 / epoch 3"


@pytest.fixture
def file_key() -> SymmetricKey:
    return SymmetricKey.generate(KeyPurpose.FILE)


def _split(blob: bytes, chunk_size: int = CHUNK) -> tuple[bytes, list[bytes]]:
    """Cut a stream into its header and its ciphertext chunks."""
    header, body = blob[:STREAM_HEADER_LEN], blob[STREAM_HEADER_LEN:]
    segment = chunk_size + TAG_LEN
    return header, [body[i : i + segment] for i in range(0, len(body), segment)]


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _feed_bytewise(decryptor: StreamDecryptor, blob: bytes, released: list[bytes]) -> None:
    """Feed one byte at a time, recording every release (even if a later byte fails)."""
    for byte in blob:
        released.append(decryptor.update(bytes((byte,))))
    released.append(decryptor.finalize())


# --- round trips ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    plaintext=st.binary(max_size=3000),
    chunk_size=st.integers(min_value=16, max_value=300),
    plain_cuts=st.lists(st.integers(min_value=0), max_size=12),
    cipher_cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_any_feeding_pattern_round_trips(
    plaintext: bytes, chunk_size: int, plain_cuts: list[int], cipher_cuts: list[int]
) -> None:
    # given
    key = SymmetricKey.generate(KeyPurpose.FILE)
    encryptor = StreamEncryptor(key, aad=AAD, chunk_size=chunk_size)

    # when: plaintext and ciphertext both arrive in arbitrary pieces
    blob = b"".join(encryptor.update(p) for p in _pieces(plaintext, plain_cuts))
    blob += encryptor.finalize()
    decryptor = StreamDecryptor(key, aad=AAD)
    recovered = b"".join(decryptor.update(p) for p in _pieces(blob, cipher_cuts))
    recovered += decryptor.finalize()

    # then
    assert recovered == plaintext
    assert len(blob) == ciphertext_length(len(plaintext), chunk_size)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_boundary_sizes_round_trip(file_key: SymmetricKey, size: int) -> None:
    plaintext = bytes(range(256)) * (size // 256 + 1)
    plaintext = plaintext[:size]
    blob = encrypt_bytes(file_key, plaintext, aad=AAD, chunk_size=CHUNK)
    assert decrypt_bytes(file_key, blob, aad=AAD) == plaintext
    assert len(blob) == ciphertext_length(size, CHUNK)


def test_iterator_helpers_round_trip(file_key: SymmetricKey) -> None:
    pieces = [b"a" * 100, b"", b"b" * 1000, b"c"]
    blob_pieces = list(iter_encrypt(file_key, pieces, aad=AAD, chunk_size=CHUNK))
    assert b"".join(iter_decrypt(file_key, blob_pieces, aad=AAD)) == b"".join(pieces)


# --- structural attacks --------------------------------------------------------------------


def test_truncating_the_stream_anywhere_fails(file_key: SymmetricKey) -> None:
    # given: four chunks
    blob = encrypt_bytes(file_key, b"x" * (3 * CHUNK + 10), aad=AAD, chunk_size=CHUNK)

    # when / then: every shorter prefix, including ones that end on a chunk boundary
    for length in range(len(blob)):
        with pytest.raises(CryptoError):
            decrypt_bytes(file_key, blob[:length], aad=AAD)


def test_dropping_whole_final_chunks_fails_even_when_chunks_are_full(
    file_key: SymmetricKey,
) -> None:
    # given: exactly three full chunks
    blob = encrypt_bytes(file_key, b"y" * (3 * CHUNK), aad=AAD, chunk_size=CHUNK)
    header, chunks = _split(blob)
    assert len(chunks) == 3

    # when / then
    for keep in (0, 1, 2):
        with pytest.raises(DecryptionError):
            decrypt_bytes(file_key, header + b"".join(chunks[:keep]), aad=AAD)


def test_reordering_chunks_fails(file_key: SymmetricKey) -> None:
    blob = encrypt_bytes(file_key, bytes(range(200)), aad=AAD, chunk_size=CHUNK)
    header, chunks = _split(blob)
    reordered = header + chunks[1] + chunks[0] + b"".join(chunks[2:])
    with pytest.raises(DecryptionError):
        decrypt_bytes(file_key, reordered, aad=AAD)


def test_duplicating_a_chunk_fails(file_key: SymmetricKey) -> None:
    blob = encrypt_bytes(file_key, bytes(range(200)), aad=AAD, chunk_size=CHUNK)
    header, chunks = _split(blob)
    duplicated = header + chunks[0] + chunks[0] + b"".join(chunks[1:])
    with pytest.raises(DecryptionError):
        decrypt_bytes(file_key, duplicated, aad=AAD)


def test_splicing_chunks_between_two_files_fails(file_key: SymmetricKey) -> None:
    # given: two files under the same file key and the same aad
    first = encrypt_bytes(file_key, b"A" * 200, aad=AAD, chunk_size=CHUNK)
    second = encrypt_bytes(file_key, b"B" * 200, aad=AAD, chunk_size=CHUNK)
    header_1, chunks_1 = _split(first)
    header_2, chunks_2 = _split(second)

    # when / then: a chunk of the second file inside the first, or the headers swapped
    with pytest.raises(DecryptionError):
        decrypt_bytes(
            file_key, header_1 + chunks_1[0] + chunks_2[1] + chunks_1[2] + chunks_1[3], aad=AAD
        )
    with pytest.raises(DecryptionError):
        decrypt_bytes(file_key, header_2 + b"".join(chunks_1), aad=AAD)


def test_appending_data_after_the_last_chunk_fails(file_key: SymmetricKey) -> None:
    blob = encrypt_bytes(file_key, b"z" * 100, aad=AAD, chunk_size=CHUNK)
    other = encrypt_bytes(file_key, b"w" * 100, aad=AAD, chunk_size=CHUNK)
    for extra in (b"\x00", _split(other)[1][-1], b"\x00" * (CHUNK + TAG_LEN)):
        with pytest.raises(DecryptionError):
            decrypt_bytes(file_key, blob + extra, aad=AAD)


def test_flipping_any_single_byte_fails(file_key: SymmetricKey) -> None:
    blob = encrypt_bytes(file_key, b"q" * 150, aad=AAD, chunk_size=CHUNK)
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(CryptoError):
            decrypt_bytes(file_key, bytes(tampered), aad=AAD)


def test_wrong_aad_or_key_fails(file_key: SymmetricKey) -> None:
    blob = encrypt_bytes(file_key, b"payload", aad=AAD)
    with pytest.raises(DecryptionError):
        decrypt_bytes(file_key, blob, aad=b"room 8 / file 99 / epoch 3")
    with pytest.raises(DecryptionError):
        decrypt_bytes(SymmetricKey.generate(KeyPurpose.FILE), blob, aad=AAD)


def test_a_key_that_is_not_a_file_key_is_refused() -> None:
    epoch_key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    with pytest.raises(KeyPurposeError):
        StreamEncryptor(epoch_key, aad=AAD)
    with pytest.raises(KeyPurposeError):
        StreamDecryptor(epoch_key, aad=AAD)


def test_a_hostile_chunk_size_in_the_header_is_refused_before_buffering(
    file_key: SymmetricKey,
) -> None:
    # given: a header announcing 1 GiB chunks
    blob = bytearray(encrypt_bytes(file_key, b"x", aad=AAD))
    blob[6:10] = (1 << 30).to_bytes(4, "big")

    # when / then
    with pytest.raises(MalformedError):
        StreamDecryptor(file_key, aad=AAD).update(bytes(blob))


# --- release only authenticated plaintext ---------------------------------------------------


def test_plaintext_is_released_only_in_whole_authenticated_chunks(file_key: SymmetricKey) -> None:
    # given: four chunks, the third one tampered
    plaintext = bytes(range(256))[: 3 * CHUNK + 20]
    blob = bytearray(encrypt_bytes(file_key, plaintext, aad=AAD, chunk_size=CHUNK))
    blob[STREAM_HEADER_LEN + 2 * (CHUNK + TAG_LEN) + 5] ^= 0x01
    decryptor = StreamDecryptor(file_key, aad=AAD)

    # when: fed one byte at a time
    released: list[bytes] = []
    with pytest.raises(DecryptionError):
        _feed_bytewise(decryptor, bytes(blob), released)

    # then: exactly the two good chunks came out, whole, and nothing of the tampered one
    assert [len(out) for out in released if out] == [CHUNK, CHUNK]
    assert b"".join(released) == plaintext[: 2 * CHUNK]


def test_a_failed_or_finished_stream_cannot_be_reused(file_key: SymmetricKey) -> None:
    # given: a decryptor that has seen a tampered last chunk
    blob = encrypt_bytes(file_key, b"data", aad=AAD)
    decryptor = StreamDecryptor(file_key, aad=AAD)
    assert decryptor.update(blob[:-1] + bytes((blob[-1] ^ 1,))) == b""
    with pytest.raises(DecryptionError):
        decryptor.finalize()

    # when / then: it refuses any further use, as does a finished encryptor
    with pytest.raises(StreamStateError):
        decryptor.update(b"")

    encryptor = StreamEncryptor(file_key, aad=AAD)
    encryptor.finalize()
    with pytest.raises(StreamStateError):
        encryptor.update(b"more")
    with pytest.raises(StreamStateError):
        encryptor.finalize()


# --- constant memory -----------------------------------------------------------------------


def test_memory_stays_bounded_for_a_large_stream(file_key: SymmetricKey) -> None:
    # given: 16 MiB fed in 64 KiB pieces through encryptor and decryptor
    piece = b"\x5a" * (64 * 1024)
    pieces = 256
    encryptor = StreamEncryptor(file_key, aad=AAD)
    decryptor = StreamDecryptor(file_key, aad=AAD)

    # when
    tracemalloc.start()
    try:
        total = 0
        for _ in range(pieces):
            total += len(decryptor.update(encryptor.update(piece)))
        total += len(decryptor.update(encryptor.finalize()))
        total += len(decryptor.finalize())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then: a handful of chunks in flight, not the 16 MiB
    assert total == len(piece) * pieces
    assert peak < 1024 * 1024


def test_the_stream_module_exposes_its_limits() -> None:
    assert stream.MIN_CHUNK_SIZE <= stream.DEFAULT_CHUNK_SIZE <= stream.MAX_CHUNK_SIZE
    assert STREAM_HEADER_LEN == 49
