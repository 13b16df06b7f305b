"""HKDF-SHA256 (RFC 5869) with mandatory, registered domain separation.

Every derivation names a :class:`~safechat.crypto.labels.KdfLabel`; the HKDF ``info`` is
``encode_fields(label, context)``, so two call sites can only collide if they pass the same
registered label *and* the same context bytes.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from safechat.crypto.envelope import encode_fields
from safechat.crypto.labels import KdfLabel

# RFC 5869: at most 255 * HashLen bytes of output.
MAX_OUTPUT_LEN = 255 * 32


def hkdf_sha256(
    ikm: bytes,
    *,
    label: KdfLabel,
    context: bytes = b"",
    salt: bytes | None = None,
    length: int = 32,
) -> bytes:
    """Derive ``length`` bytes from ``ikm``.

    Guarantees: deterministic for equal inputs; outputs for different ``label`` or ``context``
    are independent (HKDF is a PRF keyed by the extracted ``ikm``). ``ikm`` must be a uniformly
    random key of at least 32 bytes; this is not a password hash.
    """
    if not isinstance(label, KdfLabel):
        raise TypeError("label must be a registered KdfLabel")
    if not 1 <= length <= MAX_OUTPUT_LEN:
        raise ValueError("HKDF-SHA256 output length must be between 1 and 8160 bytes")
    if len(ikm) < 32:
        raise ValueError("HKDF input key material must be at least 32 bytes")
    info = encode_fields(label.value, context)
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
