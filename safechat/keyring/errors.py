"""Key-management refusals, on top of ``safechat.crypto.CryptoError``."""

from __future__ import annotations

from safechat.crypto import CryptoError


class KeyUnavailableError(CryptoError):
    """The caller holds no copy of this key: not a member, removed, or the epoch was shredded."""


class LegalHoldError(Exception):
    """A legal hold forbids destroying this room's keys."""


class RotationIncompleteError(Exception):
    """Something is still wrapped by the master-key version that was asked to be retired."""
