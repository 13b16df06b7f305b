"""Master keys inside a PKCS#11 token (an HSM; SoftHSM2 in tests).

Each master-key version is an AES-256 secret key on the token labelled ``safechat-kek-v<N>``,
created ``CKA_SENSITIVE=TRUE, CKA_EXTRACTABLE=FALSE``: its bytes never reach this process.

Mechanism: ``CKM_AES_GCM`` through ``C_Encrypt``/``C_Decrypt`` of the data-key bytes, with the
blob prefix (kind, version) and the caller's aad as GCM associated data. Why not
``CKM_AES_KEY_WRAP_PAD`` (RFC 5649)? It has no associated data, so a wrapped key could be moved
to another row undetected; and SoftHSM2 (like most HSMs) offers it only through
``C_WrapKey``/``C_UnwrapKey`` on key *objects*, which would mean importing our data keys into
the token first. SoftHSM2 2.6 supports ``CKM_AES_GCM`` for encrypt/decrypt with a 12-byte IV
and 128-bit tag, as do the common network HSMs (Thales Luna, Entrust nShield, AWS CloudHSM).

The 96-bit IV comes from the OS CSPRNG. An HSM in a strict FIPS mode that insists on
generating GCM IVs itself would need the IV-generator form of ``CK_GCM_PARAMS`` (PKCS#11 3.0);
python-pkcs11 0.10 does not expose it.

One logged-in session is kept per provider and serialised by a lock (PKCS#11 sessions are not
safe for concurrent operations). After ``fork()`` the child re-initialises the library, as
PKCS#11 requires.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

from safechat.crypto.aead import KEY_LEN, NONCE_LEN, generate_nonce
from safechat.crypto.envelope import Algorithm
from safechat.crypto.errors import (
    ConfigError,
    CryptoError,
    DecryptionError,
    MalformedError,
    ProviderError,
    UnknownKeyVersion,
)
from safechat.crypto.providers.base import MAX_VERSION, ProviderKind, WrappedKey, as_wrapped
from safechat.crypto.providers.local import read_private_file

DEFAULT_KEY_LABEL_PREFIX = "safechat-kek-v"
_TAG_BITS = 128
_TAG_LEN = _TAG_BITS // 8

# Errors after which the session (or the whole library handle) cannot be trusted any more.
_SESSION_ERRORS: tuple[type[Exception], ...] = (
    pkcs11.exceptions.SessionClosed,
    pkcs11.exceptions.SessionHandleInvalid,
    pkcs11.exceptions.DeviceError,
    pkcs11.exceptions.DeviceRemoved,
    pkcs11.exceptions.TokenNotPresent,
    pkcs11.exceptions.TokenNotRecognised,
    pkcs11.exceptions.UserNotLoggedIn,
    pkcs11.exceptions.KeyHandleInvalid,
    pkcs11.exceptions.ObjectHandleInvalid,
)


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    """Where the token is and how to log in. ``repr`` never shows the PIN."""

    library_path: str
    token_label: str
    user_pin: str = field(repr=False)
    key_label_prefix: str = DEFAULT_KEY_LABEL_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Pkcs11Config:
        """Read ``SAFECHAT_PKCS11_LIBRARY``, ``_TOKEN_LABEL``, ``_PIN`` (or ``_PIN_FILE``)."""
        library = env.get("SAFECHAT_PKCS11_LIBRARY", "")
        token = env.get("SAFECHAT_PKCS11_TOKEN_LABEL", "")
        pin = env.get("SAFECHAT_PKCS11_PIN", "")
        pin_file = env.get("SAFECHAT_PKCS11_PIN_FILE", "")
        if pin_file and not pin:
            pin = read_private_file(pin_file, what="PKCS#11 PIN file").decode("utf-8").strip()
        missing = [
            name
            for name, value in (
                ("SAFECHAT_PKCS11_LIBRARY", library),
                ("SAFECHAT_PKCS11_TOKEN_LABEL", token),
                ("SAFECHAT_PKCS11_PIN", pin),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"PKCS#11 provider needs {', '.join(missing)}")
        prefix = env.get("SAFECHAT_PKCS11_KEY_LABEL_PREFIX", DEFAULT_KEY_LABEL_PREFIX)
        return cls(library, token, pin, prefix)

    def label_for(self, version: int) -> str:
        return f"{self.key_label_prefix}{version}"


def _load_library(config: Pkcs11Config) -> Library:
    if not os.path.isfile(config.library_path):
        raise ConfigError(f"PKCS#11 library not found at {config.library_path}")
    try:
        return pkcs11.lib(config.library_path)
    except pkcs11.exceptions.PKCS11Error as exc:
        raise ProviderError(f"cannot initialise PKCS#11 library: {type(exc).__name__}") from None


# A token being rewritten by another process (a key generated during master-key rotation;
# SoftHSM2 keeps a token in files) can answer one lookup with CKR_GENERAL_ERROR. The
# lookup reads nothing secret and changes nothing, so it is retried a few times before
# the error is reported.
TOKEN_LOOKUP_ATTEMPTS = 3
TOKEN_LOOKUP_PAUSE_SECONDS = 0.05


def _token(library: Library, config: Pkcs11Config) -> pkcs11.Token:
    """The token labelled ``config.token_label``; retries a transient general error."""
    for attempt in range(1, TOKEN_LOOKUP_ATTEMPTS + 1):
        try:
            return library.get_token(token_label=config.token_label)
        except pkcs11.exceptions.NoSuchToken:
            raise ConfigError(f"no PKCS#11 token labelled {config.token_label!r}") from None
        except pkcs11.exceptions.GeneralError:
            if attempt == TOKEN_LOOKUP_ATTEMPTS:
                raise ProviderError("PKCS#11 token lookup failed: GeneralError") from None
            time.sleep(TOKEN_LOOKUP_PAUSE_SECONDS * attempt)
        except pkcs11.exceptions.PKCS11Error as exc:
            raise ProviderError(f"PKCS#11 token lookup failed: {type(exc).__name__}") from None
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _open_session(library: Library, config: Pkcs11Config, *, rw: bool) -> pkcs11.Session:
    token = _token(library, config)
    try:
        try:
            return token.open(rw=rw, user_pin=config.user_pin)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            # Login state is per application, not per session: another session holds it.
            return token.open(rw=rw)
    except (pkcs11.exceptions.PinIncorrect, pkcs11.exceptions.PinInvalid):
        raise ConfigError("PKCS#11 login refused: wrong PIN") from None
    except pkcs11.exceptions.PinLocked:
        raise ConfigError("PKCS#11 user PIN is locked") from None
    except pkcs11.exceptions.PKCS11Error as exc:
        raise ProviderError(f"PKCS#11 login failed: {type(exc).__name__}") from None


def _find_versions(session: pkcs11.Session, prefix: str) -> dict[int, pkcs11.SecretKey]:
    pattern = re.compile(re.escape(prefix) + r"([1-9][0-9]{0,9})")
    found: dict[int, pkcs11.SecretKey] = {}
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
        if not isinstance(obj, pkcs11.SecretKey):
            continue
        match = pattern.fullmatch(obj.label or "")
        if match is None:
            continue
        version = int(match.group(1))
        if version > MAX_VERSION:
            raise ConfigError(f"token key {obj.label!r} has a version above 2**32-1")
        if version in found:
            raise ConfigError(f"two keys on the token are labelled {obj.label!r}")
        if obj.key_type is not KeyType.AES or obj[Attribute.VALUE_LEN] != KEY_LEN:
            raise ConfigError(f"token key {obj.label!r} is not an AES-256 key")
        if obj[Attribute.EXTRACTABLE] or not obj[Attribute.SENSITIVE]:
            raise ConfigError(f"token key {obj.label!r} is extractable; refusing to use it")
        if not (isinstance(obj, EncryptMixin) and isinstance(obj, DecryptMixin)):
            raise ConfigError(f"token key {obj.label!r} lacks CKA_ENCRYPT/CKA_DECRYPT")
        found[version] = obj
    return found


def _gcm(key: pkcs11.SecretKey, data: bytes, params: GCMParams, *, encrypt: bool) -> bytes:
    # python-pkcs11 adds the Encrypt/Decrypt mixins at run time from CKA_ENCRYPT/CKA_DECRYPT.
    if encrypt and isinstance(key, EncryptMixin):
        result = key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params)
    elif not encrypt and isinstance(key, DecryptMixin):
        result = key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params)
    else:
        raise ConfigError("token key lacks CKA_ENCRYPT/CKA_DECRYPT")
    if not isinstance(result, bytes):
        raise ProviderError("HSM returned an unexpected result")
    return result


class Pkcs11KeyProvider:
    """Versioned master keys held by a PKCS#11 token; the highest version is current."""

    def __init__(self, config: Pkcs11Config) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._library = _load_library(config)
        self._session: pkcs11.Session | None = None
        self._keys: dict[int, pkcs11.SecretKey] = {}
        self._pid = os.getpid()
        self.refresh()
        if not self._keys:
            self.close()
            raise ConfigError(
                f"token {config.token_label!r} holds no key labelled "
                f"{config.key_label_prefix}<N>; create one with pkcs11_generate_kek()"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Pkcs11KeyProvider:
        return cls(Pkcs11Config.from_env(env))

    def _ensure_session(self) -> pkcs11.Session:
        try:
            if os.getpid() != self._pid:
                # A forked child inherits handles that are invalid in its process (PKCS#11 5.1).
                self._pid = os.getpid()
                self._session = None
                self._keys = {}
                self._library.reinitialize()
            if self._session is None:
                self._session = _open_session(self._library, self._config, rw=False)
                self._keys = _find_versions(self._session, self._config.key_label_prefix)
            return self._session
        except ConfigError:
            self._reset()
            raise
        except pkcs11.exceptions.PKCS11Error as exc:
            self._reset()
            raise ProviderError(f"HSM unavailable: {type(exc).__name__}") from None

    def _reset(self) -> None:
        session, self._session, self._keys = self._session, None, {}
        if session is not None:
            # The session may already be gone (device reset); nothing is left to release then.
            with contextlib.suppress(pkcs11.exceptions.PKCS11Error):
                session.close()

    def refresh(self) -> None:
        """Re-read which versions exist (after another process generated a new one)."""
        with self._lock:
            self._reset()
            self._ensure_session()

    def close(self) -> None:
        """Close the session; the provider reopens one on next use."""
        with self._lock:
            self._reset()

    def __enter__(self) -> Pkcs11KeyProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def kind(self) -> int:
        return ProviderKind.PKCS11

    @property
    def versions(self) -> tuple[int, ...]:
        with self._lock:
            self._ensure_session()
            if not self._keys:
                raise ConfigError(f"token {self._config.token_label!r} holds no master key")
            return tuple(sorted(self._keys))

    @property
    def current_version(self) -> int:
        return self.versions[-1]

    def _key(self, version: int) -> pkcs11.SecretKey:
        self._ensure_session()
        key = self._keys.get(version)
        if key is None:
            self.refresh()  # another process may have added it since we looked
            key = self._keys.get(version)
        if key is None:
            raise UnknownKeyVersion(f"master key version {version} is not on the token")
        return key

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey:
        """Wrap under the current version, inside the HSM."""
        with self._lock:
            version = self.current_version
            shell = WrappedKey(ProviderKind.PKCS11, version, Algorithm.AES_256_GCM, b"")
            nonce = generate_nonce()
            params = GCMParams(nonce, shell.prefix() + aad, _TAG_BITS)
            try:
                sealed = _gcm(self._key(version), plaintext_key, params, encrypt=True)
            except _SESSION_ERRORS as exc:
                self._reset()
                raise ProviderError(f"HSM unavailable: {type(exc).__name__}") from None
            except pkcs11.exceptions.PKCS11Error as exc:
                raise ProviderError(f"HSM refused to wrap: {type(exc).__name__}") from None
        return WrappedKey(ProviderKind.PKCS11, version, Algorithm.AES_256_GCM, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes:
        """Unwrap inside the HSM with the version recorded in the blob."""
        blob = as_wrapped(wrapped)
        if blob.kind != ProviderKind.PKCS11 or blob.algorithm is not Algorithm.AES_256_GCM:
            raise CryptoError("wrapped key was not made by the PKCS#11 provider")
        if len(blob.payload) < NONCE_LEN + _TAG_LEN:
            raise MalformedError("wrapped key payload too short")
        nonce, sealed = blob.payload[:NONCE_LEN], blob.payload[NONCE_LEN:]
        params = GCMParams(nonce, blob.prefix() + aad, _TAG_BITS)
        with self._lock:
            key = self._key(blob.version)
            try:
                return _gcm(key, sealed, params, encrypt=False)
            except _SESSION_ERRORS as exc:
                self._reset()
                raise ProviderError(f"HSM unavailable: {type(exc).__name__}") from None
            except pkcs11.exceptions.PKCS11Error:
                # SoftHSM2 reports a bad GCM tag as CKR_GENERAL_ERROR, others as
                # CKR_ENCRYPTED_DATA_INVALID: all mean "does not authenticate" here.
                raise DecryptionError("HSM refused to unwrap (tampered or wrong aad)") from None

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(token={self._config.token_label!r})"


def pkcs11_generate_kek(config: Pkcs11Config) -> int:
    """Generate the next master-key version on the token and return its number.

    The key is AES-256, a token object, sensitive and never extractable, usable only for
    encrypt/decrypt. Existing providers see it after ``refresh()`` (or on first unknown version).
    """
    library = _load_library(config)
    session = _open_session(library, config, rw=True)
    try:
        existing = _find_versions(session, config.key_label_prefix)
        version = max(existing, default=0) + 1
        if version > MAX_VERSION:
            raise ConfigError("master key versions exhausted")
        session.generate_key(
            KeyType.AES,
            KEY_LEN * 8,
            label=config.label_for(version),
            store=True,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.MODIFIABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: True,
                Attribute.WRAP: False,
                Attribute.UNWRAP: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
                Attribute.DERIVE: False,
            },
        )
    except pkcs11.exceptions.PKCS11Error as exc:
        raise ProviderError(f"HSM key generation failed: {type(exc).__name__}") from None
    finally:
        session.close()
    return version
