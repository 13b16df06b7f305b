"""Key-management refusals, on top of ``safechat.crypto.CryptoError``."""

from __future__ import annotations

from safechat.crypto import CryptoError


class KeyUnavailableError(CryptoError):
    """The caller holds no copy of this key: not a member, removed, or the epoch was shredded."""


class LegalHoldError(Exception):
    """A legal hold forbids destroying this room's keys."""


class RotationIncompleteError(Exception):
    """Something is still wrapped by the master-key version that was asked to be retired."""


class IntegrityFailure(CryptoError):
    """Stored key material or content failed its authenticity check: tampering or corruption.

    Distinct from :class:`KeyUnavailableError` (a legitimate absence: never a member,
    removed, shredded). ``kind`` names what failed (``"message"``, ``"epoch-copy"``,
    ``"public-key"``, ...) and ``ref`` identifies it (a row id or a composite); neither
    carries key material or plaintext. Callers report it once (logged and audited) and
    tell the client, and never fall back to using the item.
    """

    def __init__(self, *, kind: str, ref: str) -> None:
        super().__init__(f"integrity check failed: {kind} {ref}")
        self.kind = kind
        self.ref = ref


class BackfillRefused(Exception):
    """Key records without a MAC met a migration that was not asked to vouch for them."""
