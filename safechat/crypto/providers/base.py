"""The master-key (KEK) provider interface and the wrapped-key blob every provider emits.

Wrapped blob layout::

    header (6: PROVIDER_WRAPPED_KEY, algorithm, purpose MASTER_WRAP)
    provider kind (1, ProviderKind)
    key version   (4, u32 big-endian)
    payload       (provider-defined; local and PKCS#11: nonce (12) || ciphertext || tag (16))

For local and PKCS#11 wrapping the AES-256-GCM associated data is
``header || kind || version || caller aad``: a blob relabelled with another version or provider
fails to unwrap, and the caller's aad (e.g. "user 42's private key") binds it to its row.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from safechat.crypto.envelope import (
    HEADER_LEN,
    Algorithm,
    Header,
    KeyPurpose,
    ObjectType,
    parse_header,
)
from safechat.crypto.errors import CryptoError, MalformedError

_KIND_VERSION = struct.Struct(">BI")
PREFIX_LEN = HEADER_LEN + _KIND_VERSION.size
MAX_VERSION = 2**32 - 1


class ProviderKind(enum.IntEnum):
    """Which provider made a wrapped blob; values 0x10+ are reserved for KMS/Vault providers."""

    LOCAL = 0x01
    PKCS11 = 0x02


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key wrapped by a master key: records provider kind and master-key version."""

    kind: int
    version: int
    algorithm: Algorithm
    payload: bytes

    def prefix(self) -> bytes:
        """Header, kind and version: the authenticated prefix of the blob."""
        header = Header(ObjectType.PROVIDER_WRAPPED_KEY, self.algorithm, KeyPurpose.MASTER_WRAP)
        return header.encode() + _KIND_VERSION.pack(self.kind, self.version)

    def to_bytes(self) -> bytes:
        """Serialise for storage (e.g. a ``BinaryField``)."""
        return self.prefix() + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedKey:
        """Parse a stored blob; raises :class:`MalformedError` if it is not a wrapped key."""
        header = parse_header(data, object_type=ObjectType.PROVIDER_WRAPPED_KEY)
        if header.purpose is not KeyPurpose.MASTER_WRAP or len(data) < PREFIX_LEN:
            raise MalformedError("malformed wrapped key")
        kind, version = _KIND_VERSION.unpack_from(data, HEADER_LEN)
        return cls(kind, version, header.algorithm, bytes(data[PREFIX_LEN:]))

    def __repr__(self) -> str:
        return f"WrappedKey(kind={self.kind}, version={self.version}, {len(self.payload)} bytes)"


def as_wrapped(wrapped: WrappedKey | bytes) -> WrappedKey:
    """Accept either a ``WrappedKey`` or its serialised bytes."""
    return wrapped if isinstance(wrapped, WrappedKey) else WrappedKey.from_bytes(wrapped)


@runtime_checkable
class KeyProvider(Protocol):
    """A holder of versioned master keys that wraps and unwraps data keys.

    Implementations guarantee: ``wrap`` uses ``current_version``; ``unwrap`` reads the version
    from the blob and raises :class:`UnknownKeyVersion` if it no longer holds it; any tampering
    or aad mismatch raises :class:`CryptoError`. Master key material never leaves the provider.
    """

    @property
    def kind(self) -> int: ...

    @property
    def current_version(self) -> int: ...

    @property
    def versions(self) -> tuple[int, ...]: ...

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes: ...


def needs_rewrap(provider: KeyProvider, wrapped: WrappedKey | bytes) -> bool:
    """True if ``wrapped`` is not under ``provider``'s current kind and version."""
    blob = as_wrapped(wrapped)
    return blob.kind != provider.kind or blob.version != provider.current_version


def rewrap(provider: KeyProvider, wrapped: WrappedKey | bytes, *, aad: bytes) -> WrappedKey:
    """Unwrap with whichever version wrapped it and wrap again under the current version.

    Idempotent for rotation jobs: run it on rows where ``needs_rewrap`` is true, in batches.
    """
    return provider.wrap(provider.unwrap(wrapped, aad=aad), aad=aad)


class ChainedKeyProvider:
    """Wraps with ``primary``; unwraps with whichever provider (by kind) made the blob.

    For migrating between provider kinds (e.g. key file to HSM): old blobs keep working while
    ``rewrap`` moves them to the primary.
    """

    def __init__(self, primary: KeyProvider, *legacy: KeyProvider) -> None:
        self._primary = primary
        self._by_kind: dict[int, KeyProvider] = {p.kind: p for p in legacy}
        self._by_kind[primary.kind] = primary

    @property
    def kind(self) -> int:
        return self._primary.kind

    @property
    def current_version(self) -> int:
        return self._primary.current_version

    @property
    def versions(self) -> tuple[int, ...]:
        return self._primary.versions

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey:
        return self._primary.wrap(plaintext_key, aad=aad)

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes:
        blob = as_wrapped(wrapped)
        provider = self._by_kind.get(blob.kind)
        if provider is None:
            raise CryptoError(f"no provider configured for wrapped-key kind {blob.kind}")
        return provider.unwrap(blob, aad=aad)
