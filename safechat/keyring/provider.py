"""The configured master-key provider, one per process, that follows its key source.

A new master-key version is added outside this process (``rotate_master_key
--new-version`` writes the key file or generates a key on the token). Every process must
be able to unwrap with it as soon as anything is wrapped with it, so the provider here
re-reads its key source (the key file, or the token's list of keys) when it meets a
version it does not hold, when told to (``refresh_provider``, on a published
``master-key-changed``), and at least every ``SAFECHAT_MASTER_KEY_REFRESH_SECONDS`` (so it
also starts wrapping with the newest version). ``SAFECHAT_MASTER_KEYS`` cannot change in a
running process: with it, add versions by restarting every process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from django.conf import settings

from safechat.crypto import KeyProvider, UnknownKeyVersion, WrappedKey, provider_from_env
from safechat.crypto.errors import ConfigError, CryptoError
from safechat.crypto.providers import key_file_create, provider_kind
from safechat.keyring import events

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: RefreshingProvider | None = None


def settings_env() -> dict[str, str]:
    """The provider's configuration from settings, in ``provider_from_env``'s terms."""
    names = (
        "SAFECHAT_KEY_PROVIDER",
        "SAFECHAT_MASTER_KEYS",
        "SAFECHAT_MASTER_KEY_FILE",
        "SAFECHAT_PKCS11_LIBRARY",
        "SAFECHAT_PKCS11_TOKEN_LABEL",
        "SAFECHAT_PKCS11_PIN",
        "SAFECHAT_PKCS11_PIN_FILE",
        "SAFECHAT_PKCS11_KEY_LABEL_PREFIX",
    )
    env = {name: str(getattr(settings, name, "") or "") for name in names}
    env = {name: value for name, value in env.items() if value}
    # The key file default only applies when no key string is given.
    if env.get("SAFECHAT_MASTER_KEYS"):
        env.pop("SAFECHAT_MASTER_KEY_FILE", None)
    env["SAFECHAT_KEY_PROVIDER"] = provider_kind(env)
    return env


class RefreshingProvider:
    """A ``KeyProvider`` that re-reads its key source instead of failing on a new version."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._inner: KeyProvider = provider_from_env(env)
        self._loaded = time.monotonic()

    def reload(self) -> None:
        """Re-read the key source now; on failure keep the versions already known."""
        with self._lock:
            try:
                refresh = getattr(self._inner, "refresh", None)
                if callable(refresh):
                    refresh()  # PKCS#11: the token's list of key objects
                else:
                    self._inner = provider_from_env(self._env)
            except CryptoError as exc:
                logger.warning("could not re-read the master keys: %s", exc)
            self._loaded = time.monotonic()

    def _current(self) -> KeyProvider:
        interval = float(settings.SAFECHAT_MASTER_KEY_REFRESH_SECONDS)
        if interval > 0 and time.monotonic() - self._loaded >= interval:
            self.reload()
        return self._inner

    @property
    def kind(self) -> int:
        return self._current().kind

    @property
    def current_version(self) -> int:
        return self._current().current_version

    @property
    def versions(self) -> tuple[int, ...]:
        return self._current().versions

    def wrap(self, plaintext_key: bytes, *, aad: bytes) -> WrappedKey:
        return self._current().wrap(plaintext_key, aad=aad)

    def unwrap(self, wrapped: WrappedKey | bytes, *, aad: bytes) -> bytes:
        try:
            return self._current().unwrap(wrapped, aad=aad)
        except UnknownKeyVersion:
            # Another process added a version and wrapped with it: read what it published.
            self.reload()
            return self._inner.unwrap(wrapped, aad=aad)

    @property
    def inner(self) -> KeyProvider:
        return self._inner

    def __repr__(self) -> str:
        return f"RefreshingProvider({self._inner!r})"


def get_provider() -> RefreshingProvider:
    """The master-key provider; in development a missing key file is created once (0600)."""
    global _provider
    with _lock:
        if _provider is None:
            env = settings_env()
            key_file = env.get("SAFECHAT_MASTER_KEY_FILE", "")
            if (
                not settings.IS_PRODUCTION
                and env["SAFECHAT_KEY_PROVIDER"] == "local"
                and key_file
                and not Path(key_file).exists()
            ):
                # Another process may create it first; then its file is the one to use.
                with contextlib.suppress(ConfigError):
                    key_file_create(key_file)
            _provider = RefreshingProvider(env)
        return _provider


def refresh_provider(**_: object) -> None:
    """Re-read the master keys (a new version was published)."""
    provider = _provider
    if provider is not None:
        provider.reload()


def reset_provider() -> None:
    """Forget the provider: the next use builds it from settings again."""
    global _provider
    with _lock:
        _provider = None


events.on_master_key_changed(refresh_provider)
