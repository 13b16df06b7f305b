"""The archive's encryption to its recipient: HPKE (RFC 9180, ML-KEM-768 + X25519 hybrid,
``safechat.crypto.hpke``) seals a fresh AES-256 key, which encrypts the archive as one
STREAM (``safechat.crypto.stream``: AES-256-GCM chunks, truncation and reordering fail).

Layout: ``MAGIC`` (8) || sealed key length (u32, big-endian) || sealed key || stream.
Both the sealed key and the stream are bound to the export (associated data: the format
and the export's id), so an archive copied under another export's name fails to open.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

from audit.ediscovery_format import FORMAT, canonical
from safechat.crypto import (
    HpkeInfo,
    HpkePrivateKey,
    HpkePublicKey,
    KeyPurpose,
    SymmetricKey,
    open_key,
    seal_key,
)
from safechat.crypto.errors import MalformedError
from safechat.crypto.stream import iter_decrypt, iter_encrypt

MAGIC = b"SCEDISC1"
_LENGTH = struct.Struct(">I")
_SEALED_MAX = 1 << 16


def archive_aad(export_id: int) -> bytes:
    return canonical({"format": FORMAT, "export": export_id})


def archive_encrypt(
    pieces: Iterable[bytes], *, recipient: HpkePublicKey, export_id: int
) -> Iterator[bytes]:
    """The encrypted archive, produced as ``pieces`` arrive (nothing is buffered whole)."""
    key = SymmetricKey.generate(KeyPurpose.FILE)
    aad = archive_aad(export_id)
    sealed = seal_key(recipient, key, info=HpkeInfo.COMPLIANCE_EXPORT_KEY, aad=aad)
    yield MAGIC + _LENGTH.pack(len(sealed)) + sealed
    yield from iter_encrypt(key, pieces, aad=aad)


def archive_open_with(
    pieces: Iterable[bytes] | bytes, *, export_id: int, open_sealed: Callable[[bytes], SymmetricKey]
) -> Iterator[bytes]:
    """The archive's plaintext, its key opened by ``open_sealed(sealed key)``; streams.

    Raises CryptoError (MalformedError, DecryptionError) for anything not sealed to that
    key for this export, or altered, or truncated. The plaintext is provisional until the
    iterator is exhausted (``iter_decrypt``): a consumer discards it on an exception.
    """
    source = iter([pieces] if isinstance(pieces, bytes) else pieces)
    buffer = bytearray()
    for piece in source:
        buffer += piece
        if len(buffer) >= 12:
            break
    if bytes(buffer[:8]) != MAGIC or len(buffer) < 12:
        raise MalformedError("not an eDiscovery archive")
    (length,) = _LENGTH.unpack(bytes(buffer[8:12]))
    if length > _SEALED_MAX:
        raise MalformedError("not an eDiscovery archive")
    while len(buffer) < 12 + length:
        more = next(source, None)
        if more is None:
            raise MalformedError("truncated archive")
        buffer += more
    key = open_sealed(bytes(buffer[12 : 12 + length]))
    rest = bytes(buffer[12 + length :])

    def stream() -> Iterator[bytes]:
        yield rest
        yield from source

    yield from iter_decrypt(key, stream(), aad=archive_aad(export_id))


def archive_decrypt(
    pieces: Iterable[bytes] | bytes, *, private: HpkePrivateKey, export_id: int
) -> Iterator[bytes]:
    """``archive_open_with`` for the holder of the recipient's private key (offline)."""
    aad = archive_aad(export_id)
    return archive_open_with(
        pieces,
        export_id=export_id,
        open_sealed=lambda sealed: open_key(
            private, sealed, info=HpkeInfo.COMPLIANCE_EXPORT_KEY, aad=aad, purpose=KeyPurpose.FILE
        ),
    )
