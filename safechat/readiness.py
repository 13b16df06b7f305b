"""Readiness checks: can this process serve traffic right now?

Each check answers within a short timeout and reports a failure as data, never
as an exception, so ``/readyz`` can say which dependency is down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    error: str = ""

    def as_json(self) -> dict[str, object]:
        return {"ok": True} if self.ok else {"ok": False, "error": self.error}


def check_database() -> None:
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel(prefix="readyz.")
    marker = uuid.uuid4().hex
    await asyncio.wait_for(
        layer.send(channel, {"type": "readyz.ping", "marker": marker}), CHECK_TIMEOUT_SECONDS
    )
    message = await asyncio.wait_for(layer.receive(channel), CHECK_TIMEOUT_SECONDS)
    if message.get("marker") != marker:
        raise RuntimeError("channel layer returned a foreign message")


def check_channel_layer() -> None:
    async_to_sync(_channel_layer_round_trip)()


def check_celery_broker() -> None:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise RuntimeError("broker folder is not writable")
        return
    from safechat.celery import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)


def check_master_key() -> None:
    """The master key works: a random probe wrapped and unwrapped under the current version."""
    from safechat.crypto import associated_data
    from safechat.keyring.provider import get_provider

    provider = get_provider()
    probe = os.urandom(32)
    aad = associated_data(purpose="readiness-probe", nonce=uuid.uuid4())
    if provider.unwrap(provider.wrap(probe, aad=aad), aad=aad) != probe:
        raise RuntimeError("the master key does not unwrap what it wrapped")


def check_audit_signing_key() -> None:
    """The audit signing key works: a probe signed and verified with a trusted public key."""
    from audit import signing
    from audit.chain import key_id_for

    key = signing.signing_key()
    probe = os.urandom(32)
    signature = key.sign(probe)
    trusted = signing.trusted_public_keys()[key_id_for(key.public_key())]
    trusted.verify(signature, probe)  # raises InvalidSignature


def check_clamd() -> None:
    """clamd answers PING (only checked when configured: unconfigured, files wait unscanned)."""
    from files.scanner import clamd_ping

    clamd_ping()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "celery_broker": check_celery_broker,
    "master_key": check_master_key,
    "audit_signing_key": check_audit_signing_key,
}


def _active_checks() -> dict[str, Callable[[], None]]:
    from files.scanner import clamd_configured

    checks = dict(CHECKS)
    if clamd_configured():
        checks["clamd"] = check_clamd
    return checks


def run_warnings() -> dict[str, str]:
    """What an operator should know that does not make the process unready: no malware
    scanner configured (files then wait, unscanned and invisible; a configured scanner
    that does not answer is a failing check, ``clamd``)."""
    from files.scanner import SCANNER_WARNINGS, ScannerState, clamd_configured

    if clamd_configured():
        return {}
    return {"clamd": SCANNER_WARNINGS[ScannerState.UNCONFIGURED]}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in _active_checks().items():
        try:
            check()
        except Exception as exc:  # a failing dependency is an answer, not an error
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results.append(CheckResult(name=name, ok=False, error=type(exc).__name__))
        else:
            results.append(CheckResult(name=name, ok=True))
    return results
