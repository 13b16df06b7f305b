"""The PKCS#11 master-key provider against a real SoftHSM2 token.

Each test gets its own token in its own directory under ``tmp_path`` through a private
``SOFTHSM2_CONF``; nothing global is touched. If SoftHSM2 is not installed the tests FAIL
(CI must install it: ``apt-get install -y softhsm2``): an HSM path that silently skips is an
HSM path nobody tests.

The fixture lives in this module, not in a conftest, so these tests also run with
``--noconftest`` (i.e. without the Django fixtures of ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams

from safechat.crypto.errors import (
    ConfigError,
    CryptoError,
    DecryptionError,
    ProviderError,
    UnknownKeyVersion,
)
from safechat.crypto.providers import (
    ChainedKeyProvider,
    LocalKeyProvider,
    ProviderKind,
    WrappedKey,
    needs_rewrap,
    provider_from_env,
    rewrap,
)
from safechat.crypto.providers.pkcs11 import Pkcs11Config, Pkcs11KeyProvider, pkcs11_generate_kek

SOFTHSM_LIBRARY = os.environ.get("SAFECHAT_TEST_SOFTHSM_LIBRARY", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "safechat-test"
USER_PIN = "246810"
SO_PIN = "13579111"
DATA_KEY = b"\x22" * 38
AAD = b"user 42 private key"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pkcs11Config]:
    """A freshly initialised SoftHSM2 token private to this test."""
    if not os.path.isfile(SOFTHSM_LIBRARY):
        pytest.fail(
            f"SoftHSM2 library not found at {SOFTHSM_LIBRARY}: install it "
            "(apt-get install -y softhsm2) or set SAFECHAT_TEST_SOFTHSM_LIBRARY"
        )
    util = shutil.which("softhsm2-util")
    if util is None:
        pytest.fail("softhsm2-util not found: install it (apt-get install -y softhsm2)")
    token_dir = tmp_path / "tokens"
    token_dir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    # SoftHSM reads SOFTHSM2_CONF in C_Initialize: re-initialise to see this test's token.
    library = pkcs11.lib(SOFTHSM_LIBRARY)
    library.reinitialize()
    yield Pkcs11Config(SOFTHSM_LIBRARY, TOKEN_LABEL, USER_PIN)
    library.finalize()


@pytest.fixture
def provider(token: Pkcs11Config) -> Iterator[Pkcs11KeyProvider]:
    pkcs11_generate_kek(token)
    with Pkcs11KeyProvider(token) as hsm:
        yield hsm


def _session(config: Pkcs11Config) -> pkcs11.Session:
    return pkcs11.lib(config.library_path).get_token(token_label=config.token_label).open()


# --- the token and its keys ----------------------------------------------------------------


def test_a_token_without_a_master_key_is_a_config_error(token: Pkcs11Config) -> None:
    with pytest.raises(ConfigError, match="pkcs11_generate_kek"):
        Pkcs11KeyProvider(token)


def test_generated_master_keys_are_aes256_sensitive_and_never_extractable(
    provider: Pkcs11KeyProvider, token: Pkcs11Config
) -> None:
    # given
    session = _session(token)
    try:
        key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label="safechat-kek-v1")

        # then
        assert key[Attribute.VALUE_LEN] == 32
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
    finally:
        session.close()
    assert provider.versions == (1,)


def test_an_extractable_key_with_a_master_key_label_is_refused(token: Pkcs11Config) -> None:
    # given: someone created a key an attacker could export
    session = (
        pkcs11.lib(token.library_path)
        .get_token(token_label=token.token_label)
        .open(rw=True, user_pin=token.user_pin)
    )
    try:
        session.generate_key(
            KeyType.AES,
            256,
            label="safechat-kek-v1",
            store=True,
            template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False},
        )
    finally:
        session.close()

    # when / then
    with pytest.raises(ConfigError, match="extractable"):
        Pkcs11KeyProvider(token)


def test_a_wrong_pin_is_a_config_error(token: Pkcs11Config) -> None:
    pkcs11_generate_kek(token)
    wrong = Pkcs11Config(token.library_path, token.token_label, "000000")
    with pytest.raises(ConfigError, match="wrong PIN"):
        Pkcs11KeyProvider(wrong)
    assert "000000" not in repr(wrong)


def test_an_unknown_token_or_library_is_a_config_error(token: Pkcs11Config) -> None:
    with pytest.raises(ConfigError, match="no PKCS#11 token"):
        Pkcs11KeyProvider(Pkcs11Config(token.library_path, "no-such-token", token.user_pin))
    with pytest.raises(ConfigError, match="library not found"):
        Pkcs11KeyProvider(Pkcs11Config("/nonexistent/lib.so", TOKEN_LABEL, USER_PIN))


def test_the_hsm_gcm_is_standard_aes_gcm(token: Pkcs11Config) -> None:
    # given: a known key imported as a session object, so both sides can use it
    material = bytes(range(32))
    nonce = bytes(range(12))
    session = (
        pkcs11.lib(token.library_path)
        .get_token(token_label=token.token_label)
        .open(user_pin=token.user_pin)
    )
    try:
        key = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: material,
                Attribute.TOKEN: False,
                Attribute.ENCRYPT: True,
            }
        )
        assert isinstance(key, pkcs11.types.EncryptMixin)

        # when
        hsm_output = key.encrypt(
            b"data key", mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, b"ad")
        )
    finally:
        session.close()

    # then: the token's CKM_AES_GCM output is ciphertext || 16-byte tag, as in cryptography
    assert hsm_output == AESGCM(material).encrypt(nonce, b"data key", b"ad")


# --- wrapping ------------------------------------------------------------------------------


def test_wrap_then_unwrap_through_the_hsm(provider: Pkcs11KeyProvider) -> None:
    # given
    wrapped = provider.wrap(DATA_KEY, aad=AAD)

    # when
    stored = wrapped.to_bytes()

    # then
    assert (wrapped.kind, wrapped.version) == (ProviderKind.PKCS11, 1)
    assert provider.unwrap(stored, aad=AAD) == DATA_KEY
    assert DATA_KEY not in stored


def test_any_changed_byte_of_an_hsm_wrapped_key_fails(provider: Pkcs11KeyProvider) -> None:
    stored = provider.wrap(DATA_KEY, aad=AAD).to_bytes()
    for position in range(len(stored)):
        tampered = bytearray(stored)
        tampered[position] ^= 0x01
        with pytest.raises(CryptoError):
            provider.unwrap(bytes(tampered), aad=AAD)
    assert provider.unwrap(stored, aad=AAD) == DATA_KEY  # the session survived the failures


def test_wrong_aad_fails_in_the_hsm(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(DATA_KEY, aad=AAD)
    with pytest.raises(DecryptionError):
        provider.unwrap(wrapped, aad=b"user 43 private key")


def test_an_unknown_version_is_refused(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(DATA_KEY, aad=AAD)
    relabelled = WrappedKey(wrapped.kind, 9, wrapped.algorithm, wrapped.payload)
    with pytest.raises(UnknownKeyVersion):
        provider.unwrap(relabelled, aad=AAD)


def test_rotation_adds_a_version_and_rewraps_old_blobs(
    provider: Pkcs11KeyProvider, token: Pkcs11Config
) -> None:
    # given: a blob under version 1
    old = provider.wrap(DATA_KEY, aad=AAD)

    # when: an operator adds version 2 (from another process, as it were)
    assert pkcs11_generate_kek(token) == 2
    provider.refresh()
    fresh = rewrap(provider, old, aad=AAD)

    # then
    assert provider.versions == (1, 2)
    assert needs_rewrap(provider, old)
    assert fresh.version == 2
    assert not needs_rewrap(provider, fresh)
    assert provider.unwrap(old, aad=AAD) == DATA_KEY
    assert provider.unwrap(fresh, aad=AAD) == DATA_KEY


def test_a_version_added_elsewhere_is_found_on_first_use(
    provider: Pkcs11KeyProvider, token: Pkcs11Config
) -> None:
    # given: a second provider instance (another worker) creates and uses version 2
    pkcs11_generate_kek(token)
    with Pkcs11KeyProvider(token) as other_worker:
        blob = other_worker.wrap(DATA_KEY, aad=AAD)

    # when / then: our provider has not refreshed, yet unwraps it
    assert blob.version == 2
    assert provider.unwrap(blob, aad=AAD) == DATA_KEY


def test_provider_from_env_builds_the_hsm_provider(token: Pkcs11Config, tmp_path: Path) -> None:
    # given: the PIN in a file that is (at first) readable by everyone
    pkcs11_generate_kek(token)
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o644)
    env = {
        "SAFECHAT_KEY_PROVIDER": "pkcs11",
        "SAFECHAT_PKCS11_LIBRARY": SOFTHSM_LIBRARY,
        "SAFECHAT_PKCS11_TOKEN_LABEL": TOKEN_LABEL,
        "SAFECHAT_PKCS11_PIN_FILE": str(pin_file),
    }

    # when: a world-readable PIN file is refused, a private one accepted
    with pytest.raises(ConfigError, match="chmod 600"):
        provider_from_env(env)
    pin_file.chmod(0o600)
    hsm = provider_from_env(env)

    # then
    assert isinstance(hsm, Pkcs11KeyProvider)
    assert hsm.unwrap(hsm.wrap(DATA_KEY, aad=AAD), aad=AAD) == DATA_KEY
    hsm.close()
    with pytest.raises(ConfigError, match="SAFECHAT_PKCS11_PIN"):
        provider_from_env({**env, "SAFECHAT_PKCS11_PIN_FILE": ""})


def test_migrating_from_the_key_file_to_the_hsm(provider: Pkcs11KeyProvider) -> None:
    # given: data keys wrapped by the local provider before the HSM arrived
    local = LocalKeyProvider({1: bytes(range(32))})
    old = local.wrap(DATA_KEY, aad=AAD)
    chained = ChainedKeyProvider(provider, local)

    # when
    moved = rewrap(chained, old, aad=AAD)

    # then
    assert moved.kind == ProviderKind.PKCS11
    assert provider.unwrap(moved, aad=AAD) == DATA_KEY
    with pytest.raises(CryptoError, match="not made by the PKCS#11 provider"):
        provider.unwrap(old, aad=AAD)


def test_a_forked_worker_reinitialises_the_library(provider: Pkcs11KeyProvider) -> None:
    # given: a blob wrapped in the parent (prefork servers and Celery fork after setup)
    wrapped = provider.wrap(DATA_KEY, aad=AAD)

    # when: a forked child uses the inherited provider
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = provider.unwrap(wrapped, aad=AAD) == DATA_KEY
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)

    # then: the child succeeded, and the parent's session still works
    assert os.waitstatus_to_exitcode(status) == 0
    assert provider.unwrap(wrapped, aad=AAD) == DATA_KEY


class _FlakyLibrary:
    """A PKCS#11 library whose token lookup fails ``failures`` times with ``error``."""

    def __init__(self, failures: int, error: type[Exception], token: object) -> None:
        self.failures, self.error, self.token, self.calls = failures, error, token, 0

    def get_token(self, *, token_label: str) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return self.token


def test_a_transient_general_error_on_token_lookup_is_retried() -> None:
    # given a token that answers its first lookup with CKR_GENERAL_ERROR, as a file-backed
    # token being rewritten by another process does
    from safechat.crypto.providers import pkcs11 as module

    token = object()
    library = _FlakyLibrary(1, pkcs11.exceptions.GeneralError, token)
    config = Pkcs11Config("lib.so", "safechat", "1234")

    # when it is looked up, then the second attempt finds it
    assert module._token(library, config) is token  # type: ignore[arg-type]
    assert library.calls == 2


def test_a_lasting_general_error_or_another_failure_is_reported() -> None:
    from safechat.crypto.providers import pkcs11 as module

    config = Pkcs11Config("lib.so", "safechat", "1234")
    lasting = _FlakyLibrary(99, pkcs11.exceptions.GeneralError, object())
    other = _FlakyLibrary(1, pkcs11.exceptions.DeviceError, object())

    with pytest.raises(ProviderError, match="token lookup failed: GeneralError"):
        module._token(lasting, config)  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="token lookup failed: DeviceError"):
        module._token(other, config)  # type: ignore[arg-type]

    assert lasting.calls == module.TOKEN_LOOKUP_ATTEMPTS
    assert other.calls == 1  # only a general error is retried
