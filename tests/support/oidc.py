"""A real OpenID Connect provider for the tests: ``tests/oidc_provider`` (django-oauth-toolkit)
served by uvicorn in a process of its own, with an RSA signing key made for the run."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.servers import free_port, wait_until_healthy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10


@dataclass
class OidcProviderServer:
    """The running provider; ``issuer`` is what its ID tokens carry as ``iss``."""

    base: str
    issuer: str
    process: subprocess.Popen[bytes]

    def control(self, what: str, data: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(f"{self.base}/control/{what}/", json=data, timeout=TIMEOUT)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def client_register(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        post_logout_redirect_uri: str = "",
    ) -> None:
        self.control(
            "client",
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uri": redirect_uri,
                "post_logout_redirect_uri": post_logout_redirect_uri,
            },
        )

    def person(self, username: str, *, email: str = "", first_name: str = "") -> str:
        """Create (or update) a person at the provider; returns their ``sub``."""
        found = self.control(
            "user", {"username": username, "email": email, "first_name": first_name}
        )
        return str(found["sub"])

    def behave(self, **behaviour: Any) -> None:
        """How the next ID tokens are changed (``tests.oidc_provider.validator``)."""
        self.control("behaviour", behaviour)

    def logout_token(
        self,
        username: str,
        *,
        client_id: str,
        names: tuple[str, ...] = ("sub", "sid"),
        **behaviour: Any,
    ) -> str:
        """A Logout Token the provider signs for ``username``'s current session at it,
        naming them by ``names`` (``sub``, ``sid``); ``behaviour`` as for :meth:`behave`."""
        found = self.control(
            "logout-token",
            {
                "username": username,
                "client_id": client_id,
                "with": list(names),
                "behaviour": behaviour,
            },
        )
        return str(found["logout_token"])

    def browser(self, username: str) -> requests.Session:
        """A browser signed in at the provider as ``username``."""
        session = requests.Session()
        response = session.post(
            f"{self.base}/control/login/", json={"username": username}, timeout=TIMEOUT
        )
        response.raise_for_status()
        return session


def rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def start_oidc_provider(folder: Path) -> OidcProviderServer:
    """Migrate the provider's own SQLite database in ``folder`` and serve it on a free port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "SAFECHAT_ENV"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
            "PYTHONPATH": str(PROJECT_ROOT),
            "OIDC_PROVIDER_SECRET_KEY": secrets.token_urlsafe(32),
            "OIDC_PROVIDER_DATABASE": str(folder / "provider.sqlite3"),
            "OIDC_PROVIDER_ISSUER": f"{base}/o",
            "OIDC_PROVIDER_RSA_KEY": rsa_private_key_pem(),
        }
    )
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        cwd=PROJECT_ROOT, env=env, check=True, timeout=120,
    )  # fmt: skip
    log = folder / "provider.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.oidc_provider.asgi:application",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=PROJECT_ROOT, env=env, stderr=subprocess.STDOUT, stdout=output,
        )  # fmt: skip
    wait_until_healthy(process, port, seconds=30, log=log)
    return OidcProviderServer(base=base, issuer=f"{base}/o", process=process)


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProviderServer]:
    """One provider process per test module (each test uses people of its own)."""
    server = start_oidc_provider(tmp_path_factory.mktemp("oidc-provider"))
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
