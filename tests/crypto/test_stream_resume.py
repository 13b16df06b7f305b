"""Resuming a STREAM encryption across requests: identical output, no reuse, sealed tails."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import KeyPurpose
from safechat.crypto.errors import CryptoError, DecryptionError, MalformedError
from safechat.crypto.stream import (
    STREAM_HEADER_LEN,
    TAG_LEN,
    StreamDecryptor,
    StreamEncryptor,
    decrypt_bytes,
    open_tail,
    seal_tail,
)

CHUNK = 64
AAD = b"room 7 / file 99"
KEY = SymmetricKey(bytes(range(32)), KeyPurpose.FILE)


def _one_shot(plaintext: bytes) -> bytes:
    encryptor = StreamEncryptor(KEY, aad=AAD, chunk_size=CHUNK)
    return encryptor.update(plaintext) + encryptor.finalize()


def _resumed(header: bytes, plaintext: bytes, cuts: list[int], *, flush: bool = False) -> bytes:
    """Encrypt ``plaintext`` in requests cut at ``cuts``, each a fresh resumed encryptor whose
    pending bytes travel between requests only as a sealed tail; with ``flush``, a request
    that is not the last seals a full pending chunk (more plaintext is known to follow)."""
    out = [header]
    counter, tail, offset = 0, b"", 0
    points = [*sorted({c for c in cuts if 0 < c < len(plaintext)}), len(plaintext)]
    for end in points:
        pending = (
            open_tail(KEY, tail, header=header, counter=counter, aad=AAD + str(offset).encode())
            if tail
            else b""
        )
        encryptor = StreamEncryptor.resume(
            KEY, header=header, counter=counter, aad=AAD, pending=pending
        )
        out.append(encryptor.update(plaintext[offset:end]))
        offset = end
        if end == len(plaintext):
            out.append(encryptor.finalize())
        else:
            if flush:
                out.append(encryptor.flush())
            counter = encryptor.counter
            tail = seal_tail(
                KEY,
                encryptor.pending,
                header=header,
                counter=counter,
                aad=AAD + str(offset).encode(),
            )
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=5 * CHUNK + 3),
    cuts=st.lists(st.integers(min_value=0, max_value=5 * CHUNK + 3), max_size=6),
)
@pytest.mark.parametrize("flush", [False, True], ids=["tail", "flushed"])
def test_a_resumed_stream_is_byte_for_byte_the_one_shot_stream(
    plaintext: bytes, cuts: list[int], flush: bool
) -> None:
    # given the one-shot stream of a plaintext
    expected = _one_shot(plaintext)
    header = expected[:STREAM_HEADER_LEN]

    # when the same plaintext is encrypted over several requests with the same header
    # (a request that is not the last sealing a full pending chunk, or keeping it back)
    resumed = _resumed(header, plaintext, cuts, flush=flush)

    # then the two streams are identical (same nonces for the same chunks, none reused)
    assert resumed == expected
    assert decrypt_bytes(KEY, resumed, aad=AAD) == plaintext


@pytest.mark.parametrize("cut", [1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK])
def test_resuming_at_chunk_boundaries_and_inside_chunks(cut: int) -> None:
    plaintext = bytes(range(256)) * 2
    expected = _one_shot(plaintext)

    assert _resumed(expected[:STREAM_HEADER_LEN], plaintext, [cut, cut + 70]) == expected


def test_the_counter_and_pending_say_where_the_stream_stands() -> None:
    encryptor = StreamEncryptor(KEY, aad=AAD, chunk_size=CHUNK)

    encryptor.update(b"x" * (2 * CHUNK))

    # a full chunk stays pending: it may still be the last one
    assert encryptor.counter == 1
    assert encryptor.pending == b"x" * CHUNK


def test_a_resumed_stream_fails_if_a_request_is_reordered_or_dropped() -> None:
    # given a file sent in three requests, each storing whole chunks
    plaintext = b"A" * CHUNK + b"B" * CHUNK + b"C" * CHUNK + b"D"
    blob = _resumed(_one_shot(b"")[:STREAM_HEADER_LEN], plaintext, [CHUNK + 1, 2 * CHUNK + 1])
    header, body = blob[:STREAM_HEADER_LEN], blob[STREAM_HEADER_LEN:]
    seg = CHUNK + TAG_LEN
    chunks = [body[i : i + seg] for i in range(0, len(body), seg)]

    # then swapping two chunks, dropping one, or cutting the stream short fails
    for tampered in (
        header + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        header + chunks[0] + b"".join(chunks[2:]),
        header + b"".join(chunks[:-1]),
    ):
        with pytest.raises(DecryptionError):
            decrypt_bytes(KEY, tampered, aad=AAD)


def test_a_tail_opens_only_at_its_own_position_stream_and_upload() -> None:
    header = _one_shot(b"")[:STREAM_HEADER_LEN]
    other_header = _one_shot(b"")[:STREAM_HEADER_LEN]
    tail = seal_tail(KEY, b"pending bytes", header=header, counter=3, aad=b"upload 1 @ 200")

    assert open_tail(KEY, tail, header=header, counter=3, aad=b"upload 1 @ 200") == (
        b"pending bytes"
    )
    for kwargs in (
        {"header": header, "counter": 4, "aad": b"upload 1 @ 200"},
        {"header": header, "counter": 3, "aad": b"upload 2 @ 200"},
        {"header": header, "counter": 3, "aad": b"upload 1 @ 201"},
        {"header": other_header, "counter": 3, "aad": b"upload 1 @ 200"},
    ):
        with pytest.raises(DecryptionError):
            open_tail(KEY, tail, **kwargs)  # type: ignore[arg-type]


def test_a_tampered_tail_fails() -> None:
    header = _one_shot(b"")[:STREAM_HEADER_LEN]
    tail = bytearray(seal_tail(KEY, b"pending", header=header, counter=0, aad=b"u"))
    tail[-1] ^= 0x01

    with pytest.raises(DecryptionError):
        open_tail(KEY, bytes(tail), header=header, counter=0, aad=b"u")
    with pytest.raises(MalformedError):
        open_tail(KEY, b"\x02" + bytes(40), header=header, counter=0, aad=b"u")


def test_a_tail_is_not_plaintext_and_not_the_stream_key() -> None:
    header = _one_shot(b"")[:STREAM_HEADER_LEN]
    marker = b"MARKER-7f3a9c" * 3

    tail = seal_tail(KEY, marker, header=header, counter=0, aad=b"u")

    assert marker not in tail
    # a tail is not a chunk: the stream decryptor cannot take it as chunk 0
    decryptor = StreamDecryptor.resume(KEY, header=header, counter=0, aad=AAD)
    decryptor.update(tail[1 + 12 :])
    with pytest.raises(DecryptionError):
        decryptor.finalize()


def test_resume_refuses_bad_state() -> None:
    header = _one_shot(b"")[:STREAM_HEADER_LEN]

    with pytest.raises(MalformedError):
        StreamEncryptor.resume(KEY, header=header, counter=0, aad=AAD, pending=b"x" * 65)
    with pytest.raises(MalformedError):
        StreamEncryptor.resume(KEY, header=header[:-1], counter=0, aad=AAD)
    with pytest.raises(MalformedError):
        StreamEncryptor.resume(KEY, header=header, counter=-1, aad=AAD)
    with pytest.raises(CryptoError):
        StreamEncryptor.resume(KEY, header=b"\0" * STREAM_HEADER_LEN, counter=0, aad=AAD)


def test_a_range_decrypts_from_its_first_chunk() -> None:
    plaintext = bytes(range(256)) * 3
    blob = _one_shot(plaintext)
    header, body = blob[:STREAM_HEADER_LEN], blob[STREAM_HEADER_LEN:]
    seg = CHUNK + TAG_LEN

    # when decrypting from chunk 5 to the end
    decryptor = StreamDecryptor.resume(KEY, header=header, counter=5, aad=AAD)
    out = decryptor.update(body[5 * seg :]) + decryptor.finalize()

    assert out == plaintext[5 * CHUNK :]
    # and chunk 5's bytes given as chunk 4 fail
    wrong = StreamDecryptor.resume(KEY, header=header, counter=4, aad=AAD)
    with pytest.raises(DecryptionError):
        wrong.update(body[5 * seg : 7 * seg])


def test_a_flush_seals_only_a_full_chunk_and_never_as_the_last() -> None:
    # given an encryptor holding exactly one chunk, and one holding less
    full = StreamEncryptor.resume(KEY, header=_one_shot(b"")[:STREAM_HEADER_LEN], counter=0,
                                  aad=AAD, pending=b"x" * CHUNK)  # fmt: skip
    part = StreamEncryptor.resume(KEY, header=_one_shot(b"")[:STREAM_HEADER_LEN], counter=0,
                                  aad=AAD, pending=b"x" * (CHUNK - 1))  # fmt: skip

    # when both are flushed
    sealed, nothing = full.flush(), part.flush()

    # then the full chunk is sealed (its counter moves on, nothing pending), the partial
    # one is kept back
    assert len(sealed) == CHUNK + TAG_LEN
    assert (full.counter, full.pending) == (1, b"")
    assert nothing == b""
    assert (part.counter, len(part.pending)) == (0, CHUNK - 1)


def test_a_finalized_encryptor_cannot_flush() -> None:
    encryptor = StreamEncryptor(KEY, aad=AAD, chunk_size=CHUNK)
    encryptor.finalize()

    with pytest.raises(CryptoError):
        encryptor.flush()
