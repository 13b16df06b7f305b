"""What every tagged public key shares: identity, fingerprint and a printable form."""

from __future__ import annotations

import hashlib
import hmac

from safechat.crypto.envelope import KeyPurpose


class TaggedPublicKey:
    """Base of public keys: equal only to the same kind, purpose and bytes (constant time)."""

    __slots__ = ("_body", "_purpose")

    _body: bytes
    _purpose: KeyPurpose

    @property
    def purpose(self) -> KeyPurpose:
        return self._purpose

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """SHA-256 of the tagged public key, hex: a stable id to store beside sealed blobs."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, TaggedPublicKey)  # noqa: S101 - narrowed by the line above
        return self._purpose is other._purpose and hmac.compare_digest(self._body, other._body)

    def __hash__(self) -> int:
        return hash((type(self), self._purpose, self._body))

    def __repr__(self) -> str:
        fingerprint = self.fingerprint()[:16]
        return f"{type(self).__name__}(purpose={self._purpose.name}, fingerprint={fingerprint})"
