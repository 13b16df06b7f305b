"""SafeChat's cryptographic core. It imports nothing from Django.

Design in one screen (details and byte layouts: ``docs/security-crypto.md``):

* **Typed keys.** Every key is an object bound to one :class:`KeyPurpose`; its serialised form
  and every ciphertext begin with a 6-byte header (magic, format version, object type,
  algorithm, purpose) that is always authenticated. A key is refused for any other purpose,
  and a new algorithm is a new tag, so formats can evolve without guessing.
* **Messages** (:mod:`.aead`): AES-256-GCM, random 96-bit nonces, associated data built by
  :func:`associated_data` from named fields (room, message id, epoch, sender ...), so a
  ciphertext moved to another row or room fails. The GCM key is an HKDF subkey per purpose.
* **Key sealing** (:mod:`.hpke`): HPKE (RFC 9180) with the hybrid post-quantum KEM
  ML-KEM-768 + X25519, HKDF-SHA256, AES-256-GCM; room epoch keys are sealed to members.
* **Files** (:mod:`.stream`): the STREAM construction over AES-256-GCM with a per-file HKDF
  key; constant memory; truncation, reordering, duplication and splicing fail.
* **Record MACs** (:mod:`.mac`): HMAC-SHA256 under a key the master key protects, so the
  database cannot vouch for itself (public keys, sealed key copies).
* **Signatures** (:mod:`.signing`): Ed25519 with domain-separated contexts (audit checkpoints).
* **Master keys** (:mod:`.providers`): versioned KEKs behind :class:`KeyProvider`: a local
  key file/env, or a PKCS#11 HSM; blobs record provider kind and version for rotation.
* **One error type**: everything refuses with :class:`CryptoError`; nothing returns
  unauthenticated plaintext, and no message carries key material or plaintext.

Only ``cryptography`` (and python-pkcs11 for the HSM) implements primitives; this package
only composes them.
"""

from __future__ import annotations

from safechat.crypto import aead, hpke, kdf, mac, signing, stream
from safechat.crypto.aead import (
    MAX_MESSAGES_PER_KEY,
    SymmetricKey,
    associated_data,
    decrypt,
    derive_key,
    encrypt,
    unwrap_key,
    wrap_key,
)
from safechat.crypto.envelope import Algorithm, KeyPurpose, ObjectType
from safechat.crypto.errors import (
    ConfigError,
    CryptoError,
    DecryptionError,
    KeyPurposeError,
    MacError,
    MalformedError,
    ProviderError,
    SignatureError,
    StreamStateError,
    UnknownKeyVersion,
)
from safechat.crypto.hpke import HpkePrivateKey, HpkePublicKey, open_key, seal_key
from safechat.crypto.hpke import open as hpke_open
from safechat.crypto.hpke import seal as hpke_seal
from safechat.crypto.kdf import hkdf_sha256
from safechat.crypto.labels import AdPurpose, HpkeInfo, KdfLabel, MacLabel, SignatureContext
from safechat.crypto.mac import record_mac, record_mac_verify
from safechat.crypto.providers import (
    ChainedKeyProvider,
    KeyProvider,
    LocalKeyProvider,
    WrappedKey,
    needs_rewrap,
    provider_from_env,
    rewrap,
)
from safechat.crypto.signing import SigningKey, VerifyKey, sign, verify
from safechat.crypto.stream import (
    StreamDecryptor,
    StreamEncryptor,
    decrypt_bytes,
    encrypt_bytes,
    iter_decrypt,
    iter_encrypt,
)

__all__ = [
    "MAX_MESSAGES_PER_KEY",
    "AdPurpose",
    "Algorithm",
    "ChainedKeyProvider",
    "ConfigError",
    "CryptoError",
    "DecryptionError",
    "HpkeInfo",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KdfLabel",
    "KeyProvider",
    "KeyPurpose",
    "KeyPurposeError",
    "LocalKeyProvider",
    "MacError",
    "MacLabel",
    "MalformedError",
    "ObjectType",
    "ProviderError",
    "SignatureContext",
    "SignatureError",
    "SigningKey",
    "StreamDecryptor",
    "StreamEncryptor",
    "StreamStateError",
    "SymmetricKey",
    "UnknownKeyVersion",
    "VerifyKey",
    "WrappedKey",
    "aead",
    "associated_data",
    "decrypt",
    "decrypt_bytes",
    "derive_key",
    "encrypt",
    "encrypt_bytes",
    "hkdf_sha256",
    "hpke",
    "hpke_open",
    "hpke_seal",
    "iter_decrypt",
    "iter_encrypt",
    "kdf",
    "mac",
    "needs_rewrap",
    "open_key",
    "provider_from_env",
    "record_mac",
    "record_mac_verify",
    "rewrap",
    "seal_key",
    "sign",
    "signing",
    "stream",
    "unwrap_key",
    "verify",
    "wrap_key",
]
