"""Master keys held by the application: from an environment string or a 0600 JSON key file.

Wrapping is AES-256-GCM (through :class:`SymmetricKey` with purpose MASTER_WRAP, so the GCM key
is an HKDF subkey of the configured bytes) with a random 96-bit nonce; see ``base`` for the
blob layout. The highest version is current; older versions only unwrap.

Env form (``SAFECHAT_MASTER_KEYS``): ``"1:<base64 32 bytes>,2:<base64 32 bytes>"``.
File form (``SAFECHAT_MASTER_KEY_FILE``)::

    {"format": "safechat-master-keys", "format_version": 1,
     "keys": {"1": "<base64>", "2": "<base64>"}}

The file must not be readable, writable or executable by group or others: a master key on a
shared disk is refused at load time rather than discovered in an audit.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag

from safechat.crypto.aead import KEY_LEN, NONCE_LEN, SymmetricKey, generate_nonce
from safechat.crypto.envelope import Algorithm, KeyPurpose
from safechat.crypto.errors import (
    ConfigError,
    CryptoError,
    DecryptionError,
    MalformedError,
    UnknownKeyVersion,
)
from safechat.crypto.providers.base import MAX_VERSION, ProviderKind, WrappedKey, as_wrapped

FILE_FORMAT = "safechat-master-keys"
FILE_FORMAT_VERSION = 1
_TAG_LEN = 16


class LocalKeyProvider:
    """Versioned master keys in process memory (the default provider)."""

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            raise ConfigError("at least one master key version is required")
        wrapping: dict[int, SymmetricKey] = {}
        for version, material in keys.items():
            if isinstance(version, bool) or not isinstance(version, int):
                raise ConfigError("master key versions must be integers")
            if not 1 <= version <= MAX_VERSION:
                raise ConfigError(f"master key version {version} out of range")
            if len(material) != KEY_LEN:
                raise ConfigError(f"master key version {version} is not 32 bytes")
            wrapping[version] = SymmetricKey(material, KeyPurpose.MASTER_WRAP)
        self._keys = wrapping
        self._versions = tuple(sorted(wrapping))

    @classmethod
    def from_env_string(cls, value: str) -> LocalKeyProvider:
        """Parse ``"1:<base64>,2:<base64>"``; error messages never echo key material."""
        return cls(parse_env_keys(value))

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """Load a JSON key file, refusing it if group or others have any permission on it."""
        return cls(read_key_file(path))

    @property
    def kind(self) -> int:
        return ProviderKind.LOCAL

    @property
    def current_version(self) -> int:
        return self._versions[-1]

    @property
    def versions(self) -> tuple[int, ...]:
        return self._versions

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey:
        """Wrap under the current version."""
        version = self.current_version
        shell = WrappedKey(ProviderKind.LOCAL, version, Algorithm.AES_256_GCM, b"")
        nonce = generate_nonce()
        sealed = self._keys[version]._aesgcm.encrypt(nonce, plaintext_key, shell.prefix() + aad)
        return WrappedKey(ProviderKind.LOCAL, version, Algorithm.AES_256_GCM, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes:
        """Unwrap with the version recorded in the blob."""
        blob = as_wrapped(wrapped)
        if blob.kind != ProviderKind.LOCAL or blob.algorithm is not Algorithm.AES_256_GCM:
            raise CryptoError("wrapped key was not made by the local provider")
        key = self._keys.get(blob.version)
        if key is None:
            raise UnknownKeyVersion(f"master key version {blob.version} is not configured")
        if len(blob.payload) < NONCE_LEN + _TAG_LEN:
            raise MalformedError("wrapped key payload too short")
        nonce, sealed = blob.payload[:NONCE_LEN], blob.payload[NONCE_LEN:]
        try:
            return key._aesgcm.decrypt(nonce, sealed, blob.prefix() + aad)
        except InvalidTag:
            raise DecryptionError(
                "wrapped key failed authentication (tampered or wrong aad)"
            ) from None

    def __repr__(self) -> str:
        return f"LocalKeyProvider(versions={self._versions})"


def _decode_key(version: int, text: str) -> bytes:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"master key version {version} is not valid base64") from None
    if len(material) != KEY_LEN:
        raise ConfigError(f"master key version {version} must decode to 32 bytes")
    return material


def _parse_version(text: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ConfigError("master key versions must be positive integers")
    return int(text)


def parse_env_keys(value: str) -> dict[int, bytes]:
    """Parse the ``SAFECHAT_MASTER_KEYS`` format into ``{version: key}``."""
    keys: dict[int, bytes] = {}
    for entry in value.split(","):
        if not entry.strip():
            continue
        version_text, separator, key_text = entry.partition(":")
        if not separator:
            raise ConfigError("SAFECHAT_MASTER_KEYS entries must look like '<version>:<base64>'")
        version = _parse_version(version_text)
        if version in keys:
            raise ConfigError(f"master key version {version} given twice")
        keys[version] = _decode_key(version, key_text)
    if not keys:
        raise ConfigError("SAFECHAT_MASTER_KEYS holds no key")
    return keys


def format_env_keys(keys: Mapping[int, bytes]) -> str:
    """Inverse of ``parse_env_keys`` (for provisioning scripts)."""
    return ",".join(
        f"{version}:{base64.b64encode(keys[version]).decode()}" for version in sorted(keys)
    )


def read_private_file(path: str | os.PathLike[str], *, what: str) -> bytes:
    """Read a secret file, refusing it unless only its owner has any permission on it.

    Permissions are checked on the opened descriptor, so a swap between check and read
    cannot slip a different file in. Symlinks are followed (Kubernetes secret mounts use them).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot open {what} {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # checked before fdopen, which refuses a directory
        os.close(fd)
        raise ConfigError(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{what} {path} has mode {stat.S_IMODE(info.st_mode):04o}; group and "
                f"others must have no access (run: chmod 600 {path})"
            )
        return handle.read()


def read_key_file(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """Read and validate a key file, refusing it if group or others have any permission."""
    path = Path(path)
    raw = read_private_file(path, what="master key file")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"master key file {path} is not valid JSON") from None
    if (
        not isinstance(document, dict)
        or document.get("format") != FILE_FORMAT
        or document.get("format_version") != FILE_FORMAT_VERSION
        or not isinstance(document.get("keys"), dict)
    ):
        raise ConfigError(f"master key file {path} is not a {FILE_FORMAT} v1 document")
    keys: dict[int, bytes] = {}
    for version_text, key_text in document["keys"].items():
        version = _parse_version(str(version_text))
        if not isinstance(key_text, str):
            raise ConfigError(f"master key version {version} must be a base64 string")
        keys[version] = _decode_key(version, key_text)
    if not keys:
        raise ConfigError(f"master key file {path} holds no key")
    return keys


def _document(keys: Mapping[int, bytes]) -> bytes:
    body = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "keys": {str(v): base64.b64encode(keys[v]).decode() for v in sorted(keys)},
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def _write_private_temp(directory: Path, name: str, content: bytes) -> Path:
    temp = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL + 0600 from the first byte: the key never exists with wider permissions.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two operators adding a version at once must not lose one of them.
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def key_file_create(path: str | os.PathLike[str]) -> int:
    """Atomically create a new 0600 key file holding version 1; refuses to overwrite.

    Returns the version created (1). For development first boot.
    """
    path = Path(path)
    with _locked(path):
        temp = _write_private_temp(path.parent, path.name, _document({1: os.urandom(KEY_LEN)}))
        try:
            os.link(temp, path)  # atomic and fails if path exists, unlike rename
        except FileExistsError:
            raise ConfigError(f"master key file {path} already exists") from None
        finally:
            temp.unlink(missing_ok=True)
        _fsync_directory(path.parent)
    return 1


def key_file_add_version(path: str | os.PathLike[str]) -> int:
    """Atomically add a new random key as the next version; returns that version.

    Old versions stay (they are needed to unwrap until re-wrapping finishes). The file is
    replaced by rename, so a reader sees either the old or the new file, never a partial one.
    """
    path = Path(path)
    with _locked(path):
        keys = read_key_file(path)
        version = max(keys) + 1
        if version > MAX_VERSION:
            raise ConfigError("master key versions exhausted")
        keys[version] = os.urandom(KEY_LEN)
        temp = _write_private_temp(path.parent, path.name, _document(keys))
        try:
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)
    return version
