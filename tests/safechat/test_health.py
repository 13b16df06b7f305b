"""/healthz answers while the process lives; /readyz names each dependency."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from pytest_django import Settings

from files.scanner import SCANNER_WARNINGS, ScannerState
from safechat.environment import channel_layers_for
from tests.support.fixtures import project_env
from tests.support.servers import free_port


def test_healthz_answers_without_touching_dependencies(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_database_layer_and_broker_answer(
    client: Client, settings: Settings
) -> None:
    settings.SAFECHAT_CLAMD_SOCKET = settings.SAFECHAT_CLAMD_HOST = ""

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": {"ok": True},
            "channel_layer": {"ok": True},
            "celery_broker": {"ok": True},
            "master_key": {"ok": True},
            "audit_signing_key": {"ok": True},
        },
        # No scanner configured here: ready, but the operator is told (docs/files.md).
        "warnings": {"clamd": SCANNER_WARNINGS[ScannerState.UNCONFIGURED]},
    }


@pytest.mark.django_db
def test_readyz_reports_a_master_key_that_does_not_work(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    # given a configured key file that cannot be read (a directory)
    from safechat.keyring.provider import reset_provider

    settings.SAFECHAT_MASTER_KEY_FILE = str(tmp_path)
    reset_provider()

    response = client.get("/readyz")

    reset_provider()
    assert response.status_code == 503
    assert response.json()["checks"]["master_key"] == {"ok": False, "error": "ConfigError"}
    assert response.json()["checks"]["audit_signing_key"] == {"ok": True}


@pytest.mark.django_db
def test_readyz_reports_an_audit_signing_key_that_does_not_work(
    client: Client, settings: Settings
) -> None:
    from audit import signing

    settings.SAFECHAT_AUDIT_SIGNING_KEY = "bm90IGEga2V5"  # base64, but not 32 bytes
    signing.cache_clear()

    response = client.get("/readyz")

    signing.cache_clear()
    assert response.status_code == 503
    assert response.json()["checks"]["audit_signing_key"]["ok"] is False


@pytest.mark.django_db
def test_readyz_reports_a_stopped_redis_as_not_ready(client: Client, settings: Settings) -> None:
    # given Redis configured at an address where nothing listens
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings.CHANNEL_LAYERS = channel_layers_for(dead_redis)
    settings.CELERY_BROKER_URL = dead_redis

    # when readiness is asked
    response = client.get("/readyz")

    # then it is a 503 naming both Redis-backed checks, and the database as fine
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["channel_layer"]["ok"] is False
    assert body["checks"]["celery_broker"]["ok"] is False
    assert "Traceback" not in response.content.decode()


def test_readyz_reports_a_stopped_database_as_not_ready(
    tmp_path: Path, server_factory: Callable[[dict[str, str]], str]
) -> None:
    # given a real server whose PostgreSQL is not running
    dead_database = f"postgres://safechat@127.0.0.1:{free_port()}/safechat"
    base_url = server_factory(project_env(tmp_path, DATABASE_URL=dead_database))

    # when readiness is asked
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"{base_url}/readyz", timeout=15)

    # then it is a 503 naming the database, not a 500
    assert answer.value.code == 503
    body = json.loads(answer.value.read())
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["channel_layer"] == {"ok": True}
    assert body["checks"]["celery_broker"] == {"ok": True}


def test_every_response_carries_a_request_id(client: Client, settings: Settings) -> None:
    settings.SAFECHAT_TRUST_REQUEST_ID_HEADER = True  # the proxy in front sets the header
    supplied = client.get("/healthz", headers={"X-Request-ID": "lb-0123456789abcdef"})
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})

    assert supplied["X-Request-ID"] == "lb-0123456789abcdef"
    assert len(generated["X-Request-ID"]) == 32
    assert "\n" not in generated["X-Request-ID"]
