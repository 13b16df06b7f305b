"""The local master-key provider: env parsing, 0600 key files, wrapping, rotation."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from safechat.crypto.envelope import Algorithm
from safechat.crypto.errors import (
    ConfigError,
    CryptoError,
    DecryptionError,
    MalformedError,
    UnknownKeyVersion,
)
from safechat.crypto.providers import (
    ChainedKeyProvider,
    KeyProvider,
    LocalKeyProvider,
    ProviderKind,
    WrappedKey,
    format_env_keys,
    key_file_add_version,
    key_file_create,
    needs_rewrap,
    parse_env_keys,
    provider_from_env,
    rewrap,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
DATA_KEY = b"\x11" * 38
AAD = b"user 42 private key"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- configuration -------------------------------------------------------------------------


def test_env_string_parses_and_the_highest_version_is_current() -> None:
    # given
    value = f" 2:{base64.b64encode(KEY_2).decode()} , 1:{base64.b64encode(KEY_1).decode()}"

    # when
    provider = LocalKeyProvider.from_env_string(value)

    # then
    assert provider.versions == (1, 2)
    assert provider.current_version == 2
    assert parse_env_keys(format_env_keys({1: KEY_1, 2: KEY_2})) == {1: KEY_1, 2: KEY_2}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "x:AAAA",
        "0:" + base64.b64encode(KEY_1).decode(),
        "1:not*base64",
        "1:" + base64.b64encode(b"short").decode(),
        "1:{k},1:{k}".format(k=base64.b64encode(KEY_1).decode()),
    ],
)
def test_bad_env_strings_are_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        LocalKeyProvider.from_env_string(value)
    secret_part = value.partition(":")[2]
    assert not secret_part or secret_part not in str(failure.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601])
def test_a_key_file_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    # given
    path = tmp_path / "master-keys.json"
    key_file_create(path)
    path.chmod(mode)

    # when / then
    with pytest.raises(ConfigError, match="chmod 600"):
        LocalKeyProvider.from_key_file(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_key_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master-keys.json"
    key_file_create(path)
    path.chmod(mode)
    assert LocalKeyProvider.from_key_file(path).versions == (1,)


def test_a_created_key_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    # given: the most permissive umask
    previous = os.umask(0)
    try:
        # when
        version = key_file_create(tmp_path / "keys.json")
    finally:
        os.umask(previous)

    # then
    assert version == 1
    assert _mode(tmp_path / "keys.json") == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_creating_over_an_existing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key_file_create(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        key_file_create(path)
    assert path.read_bytes() == before


def test_adding_a_version_keeps_the_old_ones_and_the_mode(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys.json"
    key_file_create(path)
    old_provider = LocalKeyProvider.from_key_file(path)
    blob = old_provider.wrap(DATA_KEY, aad=AAD)

    # when
    version = key_file_add_version(path)

    # then
    provider = LocalKeyProvider.from_key_file(path)
    assert version == 2
    assert provider.versions == (1, 2)
    assert _mode(path) == 0o600
    assert provider.unwrap(blob, aad=AAD) == DATA_KEY


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"format": "other", "format_version": 1, "keys": {}}',
        b'{"format": "safechat-master-keys", "format_version": 1, "keys": {}}',
        b'{"format": "safechat-master-keys", "format_version": 1, "keys": {"1": 5}}',
    ],
)
def test_malformed_key_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError):
        LocalKeyProvider.from_key_file(path)


def test_a_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        LocalKeyProvider.from_key_file(tmp_path / "absent.json")


def test_provider_from_env_needs_exactly_one_local_source(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key_file_create(path)
    env_keys = format_env_keys({1: KEY_1})
    assert provider_from_env({"SAFECHAT_MASTER_KEYS": env_keys}).versions == (1,)
    assert provider_from_env({"SAFECHAT_MASTER_KEY_FILE": str(path)}).versions == (1,)
    with pytest.raises(ConfigError, match="not both"):
        provider_from_env({"SAFECHAT_MASTER_KEYS": env_keys, "SAFECHAT_MASTER_KEY_FILE": str(path)})
    with pytest.raises(ConfigError, match="no master key"):
        provider_from_env({})
    with pytest.raises(ConfigError, match="unknown"):
        provider_from_env({"SAFECHAT_KEY_PROVIDER": "vault"})


# --- wrapping ------------------------------------------------------------------------------


def test_wrap_then_unwrap_returns_the_key_and_records_kind_and_version() -> None:
    # given
    provider = LocalKeyProvider({1: KEY_1, 2: KEY_2})

    # when
    wrapped = provider.wrap(DATA_KEY, aad=AAD)
    stored = wrapped.to_bytes()

    # then
    assert wrapped.kind == ProviderKind.LOCAL
    assert wrapped.version == 2
    assert WrappedKey.from_bytes(stored) == wrapped
    assert provider.unwrap(stored, aad=AAD) == DATA_KEY
    assert DATA_KEY not in stored


def test_any_changed_byte_of_a_wrapped_key_fails() -> None:
    provider = LocalKeyProvider({1: KEY_1, 2: KEY_2})
    stored = provider.wrap(DATA_KEY, aad=AAD).to_bytes()
    for position in range(len(stored)):
        tampered = bytearray(stored)
        tampered[position] ^= 0x01
        with pytest.raises(CryptoError):
            provider.unwrap(bytes(tampered), aad=AAD)


def test_a_wrapped_key_bound_to_another_row_fails() -> None:
    provider = LocalKeyProvider({1: KEY_1})
    wrapped = provider.wrap(DATA_KEY, aad=b"user 42 private key")
    with pytest.raises(DecryptionError):
        provider.unwrap(wrapped, aad=b"user 43 private key")


def test_an_unknown_key_version_is_refused() -> None:
    # given: a blob made under version 1, and a provider that only holds version 2
    blob = LocalKeyProvider({1: KEY_1}).wrap(DATA_KEY, aad=AAD)

    # when / then
    with pytest.raises(UnknownKeyVersion):
        LocalKeyProvider({2: KEY_2}).unwrap(blob, aad=AAD)


def test_relabelling_the_version_of_a_blob_fails() -> None:
    # given: both versions hold the same bytes, so only the authenticated label differs
    provider = LocalKeyProvider({1: KEY_1, 2: KEY_1})
    wrapped = provider.wrap(DATA_KEY, aad=AAD)
    relabelled = WrappedKey(wrapped.kind, 1, wrapped.algorithm, wrapped.payload)

    # when / then
    with pytest.raises(DecryptionError):
        provider.unwrap(relabelled, aad=AAD)


def test_a_blob_from_another_provider_kind_is_refused() -> None:
    provider = LocalKeyProvider({1: KEY_1})
    foreign = WrappedKey(ProviderKind.PKCS11, 1, Algorithm.AES_256_GCM, bytes(40))
    with pytest.raises(CryptoError, match="not made by the local provider"):
        provider.unwrap(foreign, aad=AAD)
    with pytest.raises(MalformedError):
        provider.unwrap(b"SC\x01\x02\x01\x03" + bytes(40), aad=AAD)


def test_rotation_rewraps_old_blobs_under_the_current_version() -> None:
    # given: blobs made before version 2 existed
    old = LocalKeyProvider({1: KEY_1}).wrap(DATA_KEY, aad=AAD)
    provider = LocalKeyProvider({1: KEY_1, 2: KEY_2})

    # when
    assert needs_rewrap(provider, old)
    fresh = rewrap(provider, old, aad=AAD)

    # then
    assert fresh.version == 2
    assert not needs_rewrap(provider, fresh)
    assert LocalKeyProvider({2: KEY_2}).unwrap(fresh, aad=AAD) == DATA_KEY


class FakeKms:
    """A stand-in for a cloud KMS provider: opaque payloads, kind 0x10 (see the docs)."""

    def __init__(self) -> None:
        self._store: dict[bytes, tuple[bytes, bytes]] = {}

    @property
    def kind(self) -> int:
        return 0x10

    @property
    def current_version(self) -> int:
        return 1

    @property
    def versions(self) -> tuple[int, ...]:
        return (1,)

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey:
        handle = os.urandom(16)
        self._store[handle] = (plaintext_key, aad)
        return WrappedKey(self.kind, 1, Algorithm.EXTERNAL, handle)

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes:
        blob = wrapped if isinstance(wrapped, WrappedKey) else WrappedKey.from_bytes(wrapped)
        key, bound = self._store[blob.payload]
        if bound != aad:
            raise DecryptionError("aad mismatch")
        return key


def test_a_chained_provider_migrates_blobs_to_another_provider_kind() -> None:
    # given: blobs from the local provider, and a new primary of another kind
    legacy = LocalKeyProvider({1: KEY_1})
    old = legacy.wrap(DATA_KEY, aad=AAD).to_bytes()
    chained = ChainedKeyProvider(FakeKms(), legacy)
    assert isinstance(chained, KeyProvider)

    # when
    fresh = rewrap(chained, old, aad=AAD)

    # then
    assert chained.unwrap(old, aad=AAD) == DATA_KEY
    assert chained.unwrap(fresh.to_bytes(), aad=AAD) == DATA_KEY
    assert (fresh.kind, fresh.version) == (0x10, 1)
    assert needs_rewrap(chained, old)
    assert not needs_rewrap(chained, fresh)


def test_a_chained_provider_refuses_kinds_it_does_not_know() -> None:
    chained = ChainedKeyProvider(LocalKeyProvider({1: KEY_1}))
    foreign = WrappedKey(ProviderKind.PKCS11, 1, Algorithm.AES_256_GCM, bytes(40))
    with pytest.raises(CryptoError, match="no provider configured"):
        chained.unwrap(foreign, aad=AAD)
