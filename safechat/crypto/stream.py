"""Streaming AEAD for files: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015)
over AES-256-GCM, laid out like Tink's AES-GCM-HKDF streaming AEAD.

Stream layout::

    header (49 bytes)
        0   6   common header (STREAM, STREAM_AES256GCM_HKDFSHA256, purpose FILE)
        6   4   chunk size: plaintext bytes per chunk, u32 big-endian
        10  32  salt (random)
        42  7   nonce prefix (random)
    chunk 0 .. chunk n-1   each = AES-256-GCM(ciphertext || 16-byte tag)

Every chunk but the last holds exactly ``chunk size`` plaintext bytes; the last holds 0..chunk
size (an empty file is one empty last chunk).

* Per-file key: ``HKDF-SHA256(file key, salt=salt, label=STREAM_FILE_KEY, context=header)``.
  Chunks spliced from another file (other salt, so other key) fail.
* Nonce of chunk i: ``prefix (7) || i as u32 big-endian (4) || last flag (1: 0x00 or 0x01)``.
  Reordering or duplicating chunks changes i; truncating at a chunk boundary leaves a last
  chunk whose flag was 0; appending data makes the real last chunk non-last: all fail.
* Associated data of every chunk: ``header || caller aad``.

Memory is bounded by one chunk plus the piece passed to ``update``. The decryptor releases a
chunk's plaintext only after that chunk's tag has verified; but a truncated stream is only
detected at ``finalize()``, so a consumer must treat released plaintext as provisional until
``finalize()`` returns (e.g. abort the HTTP response, discard the output) on an exception.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safechat.crypto.aead import SymmetricKey
from safechat.crypto.envelope import (
    HEADER_LEN,
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    parse_header,
)
from safechat.crypto.errors import (
    CryptoError,
    DecryptionError,
    KeyPurposeError,
    MalformedError,
    StreamStateError,
)
from safechat.crypto.kdf import hkdf_sha256
from safechat.crypto.labels import KdfLabel

DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 16
# Bounds what a decryptor buffers for a hostile header.
MAX_CHUNK_SIZE = 8 * 1024 * 1024
SALT_LEN = 32
NONCE_PREFIX_LEN = 7
TAG_LEN = 16
STREAM_HEADER_LEN = HEADER_LEN + 4 + SALT_LEN + NONCE_PREFIX_LEN
MAX_CHUNKS = 2**32

_U32 = struct.Struct(">I")
_COMMON_HEADER = Header(
    ObjectType.STREAM, Algorithm.STREAM_AES256GCM_HKDFSHA256, KeyPurpose.FILE
).encode()


def _require_file_key(key: object) -> SymmetricKey:
    if not isinstance(key, SymmetricKey):
        raise KeyPurposeError(f"expected a SymmetricKey, got {type(key).__name__}")
    if key.purpose is not KeyPurpose.FILE:
        raise KeyPurposeError(f"stream encryption needs a FILE key, got {key.purpose.name}")
    return key


def _check_chunk_size(chunk_size: int) -> None:
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise MalformedError(f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}")


def _file_cipher(key: SymmetricKey, header: bytes) -> AESGCM:
    salt = header[HEADER_LEN + 4 : HEADER_LEN + 4 + SALT_LEN]
    derived = hkdf_sha256(key._material, label=KdfLabel.STREAM_FILE_KEY, context=header, salt=salt)
    return AESGCM(derived)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= MAX_CHUNKS:
        raise CryptoError("stream too long: chunk counter exhausted")
    return prefix + _U32.pack(counter) + (b"\x01" if last else b"\x00")


def ciphertext_length(plaintext_length: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Exact size of the stream ``StreamEncryptor`` produces for ``plaintext_length`` bytes."""
    chunks = max(1, -(-plaintext_length // chunk_size))
    return STREAM_HEADER_LEN + plaintext_length + chunks * TAG_LEN


class StreamEncryptor:
    """Incremental encryptor: ``update`` any-size pieces, then ``finalize`` exactly once."""

    def __init__(
        self, key: SymmetricKey, *, aad: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        key = _require_file_key(key)
        _check_chunk_size(chunk_size)
        self._chunk_size = chunk_size
        self._prefix = os.urandom(NONCE_PREFIX_LEN)
        self._header = _COMMON_HEADER + _U32.pack(chunk_size) + os.urandom(SALT_LEN) + self._prefix
        self._cipher = _file_cipher(key, self._header)
        self._aad = self._header + aad
        self._buffer = bytearray()
        self._counter = 0
        self._header_sent = False
        self._finished = False

    def _take_header(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return self._header

    def _seal_chunk(self, chunk: bytes | bytearray, *, last: bool) -> bytes:
        nonce = _nonce(self._prefix, self._counter, last)
        self._counter += 1
        return self._cipher.encrypt(nonce, chunk, self._aad)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed plaintext; returns the ciphertext of every chunk known not to be the last."""
        if self._finished:
            raise StreamStateError("encryptor already finalized")
        out = [self._take_header()]
        self._buffer += data
        size = self._chunk_size
        # Strictly greater: a full chunk is only non-last once a further byte exists.
        while len(self._buffer) > size:
            out.append(self._seal_chunk(self._buffer[:size], last=False))
            del self._buffer[:size]
        return b"".join(out)

    def finalize(self) -> bytes:
        """Encrypt the buffered tail as the last chunk and close the stream."""
        if self._finished:
            raise StreamStateError("encryptor already finalized")
        self._finished = True
        out = self._take_header() + self._seal_chunk(self._buffer, last=True)
        self._buffer.clear()
        return out


class StreamDecryptor:
    """Incremental decryptor; plaintext of a chunk is returned only after its tag verifies."""

    def __init__(self, key: SymmetricKey, *, aad: bytes) -> None:
        self._key = _require_file_key(key)
        self._caller_aad = aad
        self._buffer = bytearray()
        self._cipher: AESGCM | None = None
        self._aad = b""
        self._prefix = b""
        self._segment = 0
        self._counter = 0
        self._finished = False

    def _read_header(self) -> None:
        header = bytes(self._buffer[:STREAM_HEADER_LEN])
        parsed = parse_header(header, object_type=ObjectType.STREAM)
        if parsed.algorithm is not Algorithm.STREAM_AES256GCM_HKDFSHA256:
            raise MalformedError(f"unsupported stream algorithm {parsed.algorithm.name}")
        if parsed.purpose is not KeyPurpose.FILE:
            raise KeyPurposeError("stream header is not for a FILE key")
        (chunk_size,) = _U32.unpack_from(header, HEADER_LEN)
        _check_chunk_size(chunk_size)
        self._segment = chunk_size + TAG_LEN
        self._prefix = header[STREAM_HEADER_LEN - NONCE_PREFIX_LEN :]
        self._cipher = _file_cipher(self._key, header)
        self._aad = header + self._caller_aad
        del self._buffer[:STREAM_HEADER_LEN]

    def _open_chunk(self, chunk: bytes | bytearray, *, last: bool) -> bytes:
        cipher = self._cipher
        if cipher is None:
            raise StreamStateError("stream header not read yet")
        nonce = _nonce(self._prefix, self._counter, last)
        self._counter += 1
        try:
            return cipher.decrypt(nonce, chunk, self._aad)
        except InvalidTag:
            raise DecryptionError(
                "stream chunk failed authentication (tampered, truncated, reordered or spliced)"
            ) from None

    def _fail_safe(self) -> None:
        if self._finished:
            raise StreamStateError("decryptor already finished or failed")

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed ciphertext; returns authenticated plaintext of every complete non-last chunk."""
        self._fail_safe()
        try:
            self._buffer += data
            if self._cipher is None:
                if len(self._buffer) < STREAM_HEADER_LEN:
                    return b""
                self._read_header()
            out = []
            segment = self._segment
            # Strictly greater: the chunk is non-last only if more ciphertext follows it.
            while len(self._buffer) > segment:
                out.append(self._open_chunk(self._buffer[:segment], last=False))
                del self._buffer[:segment]
            return b"".join(out)
        except CryptoError:
            self._poison()
            raise

    def finalize(self) -> bytes:
        """Authenticate the last chunk; raises if the stream was truncated or extended."""
        self._fail_safe()
        try:
            if self._cipher is None:
                raise DecryptionError("stream truncated: incomplete header")
            if len(self._buffer) < TAG_LEN:
                raise DecryptionError("stream truncated: last chunk missing")
            return self._open_chunk(self._buffer, last=True)
        finally:
            self._poison()

    def _poison(self) -> None:
        self._finished = True
        self._buffer.clear()


def iter_encrypt(
    key: SymmetricKey,
    pieces: Iterable[bytes],
    *,
    aad: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encrypt an iterable of plaintext pieces lazily (e.g. an upload as it arrives)."""
    encryptor = StreamEncryptor(key, aad=aad, chunk_size=chunk_size)
    for piece in pieces:
        out = encryptor.update(piece)
        if out:
            yield out
    yield encryptor.finalize()


def iter_decrypt(key: SymmetricKey, pieces: Iterable[bytes], *, aad: bytes) -> Iterator[bytes]:
    """Decrypt lazily (e.g. into a streaming HTTP response).

    Raises :class:`CryptoError` at the first bad chunk, or at the end if the stream was
    truncated: the consumer must abort whatever it did with earlier pieces in that case.
    """
    decryptor = StreamDecryptor(key, aad=aad)
    for piece in pieces:
        out = decryptor.update(piece)
        if out:
            yield out
    tail = decryptor.finalize()
    if tail:
        yield tail


def encrypt_bytes(
    key: SymmetricKey, plaintext: bytes, *, aad: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """Whole-buffer helper: the same stream format as ``StreamEncryptor``."""
    encryptor = StreamEncryptor(key, aad=aad, chunk_size=chunk_size)
    return encryptor.update(plaintext) + encryptor.finalize()


def decrypt_bytes(key: SymmetricKey, stream: bytes, *, aad: bytes) -> bytes:
    """Whole-buffer helper: returns the plaintext only if the entire stream authenticates."""
    decryptor = StreamDecryptor(key, aad=aad)
    return decryptor.update(stream) + decryptor.finalize()
