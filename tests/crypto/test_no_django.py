"""The crypto core runs where Django and Celery cannot even be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: a meta-path finder refuses django and celery (and
# everything under them) before anything is imported, then every module of the crypto
# core is imported and a key is sealed to a key pair and opened again.
SCRIPT = textwrap.dedent(
    """
    import importlib
    import pkgutil
    import sys

    BLOCKED = ("django", "celery", "kombu")

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not available here")
            return None

    sys.meta_path.insert(0, Refuse())

    import safechat.crypto as crypto

    names = [crypto.__name__]
    for module in pkgutil.walk_packages(crypto.__path__, prefix="safechat.crypto."):
        importlib.import_module(module.name)
        names.append(module.name)

    from safechat.crypto import (
        HpkeInfo, HpkePrivateKey, KeyPurpose, SymmetricKey, decrypt, encrypt, open_key,
        seal_key,
    )

    private = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
    sealed = seal_key(private.public_key(), key, info=HpkeInfo.ROOM_EPOCH_KEY, aad=b"ad")
    opened = open_key(
        private, sealed, info=HpkeInfo.ROOM_EPOCH_KEY, aad=b"ad", purpose=KeyPurpose.ROOM_EPOCH
    )
    assert opened.to_bytes() == key.to_bytes()
    assert decrypt(opened, encrypt(key, b"hello", aad=b"m"), aad=b"m") == b"hello"

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print(" ".join(sorted(names)))
    """
)


def run_without_django(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
    )


def test_the_crypto_core_imports_and_round_trips_without_django_or_celery() -> None:
    # given an interpreter in which django and celery cannot be imported
    # when the crypto core and every one of its modules is imported and used
    result = run_without_django(SCRIPT)

    # then it all works, and neither was loaded
    assert result.returncode == 0, result.stderr
    imported = result.stdout.split()
    expected = {
        f"safechat.crypto.{path.stem}"
        for path in (PROJECT_ROOT / "safechat" / "crypto").glob("*.py")
        if path.stem != "__init__"
    }
    assert expected <= set(imported)
    assert "safechat.crypto.providers.local" in imported


def test_the_blocker_would_catch_a_django_import() -> None:
    # given the same interpreter, when something imports django, then it fails: the test
    # above proves an absence, not a blocker that lets everything through
    script = SCRIPT.replace("import safechat.crypto as crypto", "import django.conf\n", 1)
    result = run_without_django(script)
    assert result.returncode != 0
    assert "django is not available here" in result.stderr
