"""The archive's encryption to its recipient: HPKE (RFC 9180, ML-KEM-768 + X25519 hybrid,
``safechat.crypto.hpke``) seals a fresh AES-256 key, which encrypts the archive as one
STREAM (``safechat.crypto.stream``: AES-256-GCM chunks, truncation and reordering fail).

Layout: ``MAGIC`` (8) || sealed key length (u32, big-endian) || sealed key || stream.
Both the sealed key and the stream are bound to the export (associated data: the format
and the export's id), so an archive copied under another export's name fails to open.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

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


def _aad(export_id: int) -> bytes:
    return canonical({"format": FORMAT, "export": export_id})


def archive_encrypt(
    pieces: Iterable[bytes], *, recipient: HpkePublicKey, export_id: int
) -> Iterator[bytes]:
    """The encrypted archive, produced as ``pieces`` arrive (nothing is buffered whole)."""
    key = SymmetricKey.generate(KeyPurpose.FILE)
    sealed = seal_key(recipient, key, info=HpkeInfo.COMPLIANCE_EXPORT_KEY, aad=_aad(export_id))
    yield MAGIC + _LENGTH.pack(len(sealed)) + sealed
    yield from iter_encrypt(key, pieces, aad=_aad(export_id))


def archive_decrypt(data: bytes, *, private: HpkePrivateKey, export_id: int) -> Iterator[bytes]:
    """The archive's plaintext; raises CryptoError (MalformedError, DecryptionError) for
    anything not sealed to ``private`` for this export, or altered, or truncated. The
    plaintext is provisional until the iterator is exhausted (``iter_decrypt``)."""
    if data[:8] != MAGIC or len(data) < 12:
        raise MalformedError("not an eDiscovery archive")
    (length,) = _LENGTH.unpack(data[8:12])
    sealed, stream = data[12 : 12 + length], data[12 + length :]
    key = open_key(
        private, sealed, info=HpkeInfo.COMPLIANCE_EXPORT_KEY, aad=_aad(export_id),
        purpose=KeyPurpose.FILE,
    )  # fmt: skip
    yield from iter_decrypt(key, [stream], aad=_aad(export_id))
