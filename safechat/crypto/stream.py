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

Resuming (a resumable upload continues over several requests, perhaps processes):

* ``StreamEncryptor.resume(key, header=..., counter=..., pending=...)`` continues the stream
  whose header is ``header`` at chunk ``counter`` (the number of chunks already sealed), with
  ``pending`` the plaintext buffered after them (at most one chunk). It produces exactly the
  bytes the one-shot encryptor would have produced from that point. The caller must persist
  ``counter`` together with the chunks it stored, and never resume twice from one counter
  with different data: that would reuse chunk nonces.
* ``pending`` is plaintext: between requests it is kept only sealed, with ``seal_tail``:
  AES-256-GCM under ``HKDF-SHA256(file key, salt=salt, label=STREAM_UPLOAD_TAIL,
  context=header)``, a random 96-bit nonce, associated data ``header || counter (u32) ||
  caller aad``. Layout: ``version (1: 0x01) || nonce (12) || ciphertext || tag (16)``. A
  tail from another stream, another position or another upload (caller aad) fails.
* ``StreamDecryptor.resume(key, header=..., counter=...)`` decrypts from chunk ``counter``
  on (a byte range of a file decrypts only the chunks it needs).

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


def _stream_salt(header: bytes) -> bytes:
    return header[HEADER_LEN + 4 : HEADER_LEN + 4 + SALT_LEN]


def _parse_stream_header(header: bytes) -> int:
    """Check a full stream header; returns its chunk size."""
    if len(header) != STREAM_HEADER_LEN:
        raise MalformedError("a stream header is exactly 49 bytes")
    parsed = parse_header(header, object_type=ObjectType.STREAM)
    if parsed.algorithm is not Algorithm.STREAM_AES256GCM_HKDFSHA256:
        raise MalformedError(f"unsupported stream algorithm {parsed.algorithm.name}")
    if parsed.purpose is not KeyPurpose.FILE:
        raise KeyPurposeError("stream header is not for a FILE key")
    (chunk_size,) = _U32.unpack_from(header, HEADER_LEN)
    _check_chunk_size(chunk_size)
    return int(chunk_size)


def _check_counter(counter: int) -> None:
    if not 0 <= counter < MAX_CHUNKS:
        raise MalformedError("chunk counter out of range")


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

    @classmethod
    def resume(
        cls,
        key: SymmetricKey,
        *,
        header: bytes,
        counter: int,
        aad: bytes,
        pending: bytes | bytearray = b"",
    ) -> StreamEncryptor:
        """Continue the stream ``header`` at chunk ``counter``, with ``pending`` buffered.

        The header is not emitted again (it was stored when the stream began). Raises
        ``MalformedError`` for a bad header, counter, or a ``pending`` longer than a chunk.
        """
        key = _require_file_key(key)
        chunk_size = _parse_stream_header(header)
        _check_counter(counter)
        if len(pending) > chunk_size:
            raise MalformedError("pending plaintext is longer than one chunk")
        self = cls.__new__(cls)
        self._chunk_size = chunk_size
        self._prefix = header[STREAM_HEADER_LEN - NONCE_PREFIX_LEN :]
        self._header = bytes(header)
        self._cipher = _file_cipher(key, self._header)
        self._aad = self._header + aad
        self._buffer = bytearray(pending)
        self._counter = counter
        self._header_sent = True
        self._finished = False
        return self

    @property
    def header(self) -> bytes:
        """The stream's 49-byte header (to persist for ``resume``)."""
        return self._header

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def counter(self) -> int:
        """How many chunks have been sealed so far (the ``counter`` to resume at)."""
        return self._counter

    @property
    def pending(self) -> bytes:
        """The plaintext buffered after the sealed chunks (0..chunk size bytes).

        Plaintext: keep it only in memory, or sealed with ``seal_tail``.
        """
        return bytes(self._buffer)

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

    def flush(self) -> bytes:
        """Seal a full buffered chunk as a chunk that is not the last; b"" otherwise.

        ``update`` keeps a full chunk back until a further byte shows it is not the last.
        A caller that knows more plaintext follows (an upload whose declared length is not
        reached) may seal it now: the output is the one-shot stream's all the same, as the
        next ``update`` would have sealed that chunk non-last. Calling ``finalize`` with no
        further ``update`` after a flush that sealed a chunk gives a different, still
        valid stream (an empty last chunk): flush only when more plaintext is certain.
        """
        if self._finished:
            raise StreamStateError("encryptor already finalized")
        out = self._take_header()
        if len(self._buffer) == self._chunk_size:
            out += self._seal_chunk(self._buffer, last=False)
            self._buffer.clear()
        return out

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

    @classmethod
    def resume(
        cls, key: SymmetricKey, *, header: bytes, counter: int, aad: bytes
    ) -> StreamDecryptor:
        """Decrypt the stream ``header`` from chunk ``counter`` on.

        Feed the ciphertext starting at that chunk (the header is not fed again). Chunks are
        released as for a whole stream: each once the next byte exists, the last at
        ``finalize()``; a reader of a range that stops before the stream's end feeds one
        chunk more than it needs, or stops without ``finalize()`` and keeps only released
        plaintext.
        """
        self = cls(key, aad=aad)
        _check_counter(counter)
        self._install_header(bytes(header))
        self._counter = counter
        return self

    def _install_header(self, header: bytes) -> None:
        chunk_size = _parse_stream_header(header)
        self._segment = chunk_size + TAG_LEN
        self._prefix = header[STREAM_HEADER_LEN - NONCE_PREFIX_LEN :]
        self._cipher = _file_cipher(self._key, header)
        self._aad = header + self._caller_aad

    def _read_header(self) -> None:
        self._install_header(bytes(self._buffer[:STREAM_HEADER_LEN]))
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


TAIL_VERSION = 0x01
TAIL_NONCE_LEN = 12
_TAIL_OVERHEAD = 1 + TAIL_NONCE_LEN + TAG_LEN


def _tail_cipher(key: SymmetricKey, header: bytes) -> AESGCM:
    _parse_stream_header(header)
    derived = hkdf_sha256(
        key._material,
        label=KdfLabel.STREAM_UPLOAD_TAIL,
        context=header,
        salt=_stream_salt(header),
    )
    return AESGCM(derived)


def seal_tail(
    key: SymmetricKey, pending: bytes, *, header: bytes, counter: int, aad: bytes
) -> bytes:
    """Seal the pending plaintext of a resumable stream (see the module's layout).

    ``header`` and ``counter`` are the stream's and the position the tail continues from;
    ``aad`` binds the caller's identity (upload id, offset). Random 96-bit nonce: a file
    seals one tail per request, far below GCM's random-nonce bound.
    """
    key = _require_file_key(key)
    _check_counter(counter)
    nonce = os.urandom(TAIL_NONCE_LEN)
    sealed = _tail_cipher(key, header).encrypt(nonce, pending, header + _U32.pack(counter) + aad)
    return bytes((TAIL_VERSION,)) + nonce + sealed


def open_tail(key: SymmetricKey, blob: bytes, *, header: bytes, counter: int, aad: bytes) -> bytes:
    """Open a tail sealed by ``seal_tail`` with the same header, counter and aad, or raise
    ``DecryptionError`` (tampered, moved, or from another position) / ``MalformedError``."""
    key = _require_file_key(key)
    _check_counter(counter)
    if len(blob) < _TAIL_OVERHEAD or blob[0] != TAIL_VERSION:
        raise MalformedError("malformed upload tail")
    nonce = blob[1 : 1 + TAIL_NONCE_LEN]
    try:
        return _tail_cipher(key, header).decrypt(
            nonce, blob[1 + TAIL_NONCE_LEN :], header + _U32.pack(counter) + aad
        )
    except InvalidTag:
        raise DecryptionError("upload tail failed authentication") from None


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
