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


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "celery_broker": check_celery_broker,
}


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # a failing dependency is an answer, not an error
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results.append(CheckResult(name=name, ok=False, error=type(exc).__name__))
        else:
            results.append(CheckResult(name=name, ok=True))
    return results
