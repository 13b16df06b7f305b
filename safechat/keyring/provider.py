"""The configured master-key provider, built once per process from settings."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from django.conf import settings

from safechat.crypto import KeyProvider, provider_from_env
from safechat.crypto.errors import ConfigError
from safechat.crypto.providers import key_file_create

_lock = threading.Lock()
_provider: KeyProvider | None = None


def _settings_env() -> dict[str, str]:
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
    return env


def get_provider() -> KeyProvider:
    """The master-key provider; in development a missing key file is created once (0600)."""
    global _provider
    with _lock:
        if _provider is None:
            env = _settings_env()
            key_file = env.get("SAFECHAT_MASTER_KEY_FILE", "")
            if (
                not settings.IS_PRODUCTION
                and env.get("SAFECHAT_KEY_PROVIDER", "local") == "local"
                and key_file
                and not Path(key_file).exists()
            ):
                # Another process may create it first; then its file is the one to use.
                with contextlib.suppress(ConfigError):
                    key_file_create(key_file)
            _provider = provider_from_env(env)
        return _provider


def reset_provider() -> None:
    """Forget the provider, e.g. after a new master-key version was added to the key file."""
    global _provider
    with _lock:
        _provider = None
