"""What the PostgreSQL benchmarks share: a scratch database beside the configured one, and
Django set up on it with test keys and the limits that would throttle a benchmark lifted.

Never for production: the audit signing key is a constant."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def bench_urls(url: str, suffix: str) -> tuple[str, str, str]:
    """(the scratch database's URL, its name, the maintenance database's URL) for the
    PostgreSQL ``url``: the scratch database is named after ``url``'s, plus ``suffix``."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    return (
        urlunsplit(parts._replace(path=f"/{name}")),
        name,
        urlunsplit(parts._replace(path="/postgres")),
    )


def django_setup(database_url: str, data_dir: Path) -> None:
    """Set Django up in this process on ``database_url`` with ``data_dir`` as its data
    folder: no Redis, a constant audit key, no checkpoint tasks (they would need a broker;
    their cost is one row per 1,000 events), rate limits and retention minimum lifted."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ["SAFECHAT_DATA_DIR"] = str(data_dir)
    os.environ["SAFECHAT_AUDIT_SIGNING_KEY"] = base64.b64encode(b"\x42" * 32).decode()
    os.environ["SAFECHAT_AUDIT_ANCHOR_FILE"] = str(data_dir / "anchors.jsonl")
    os.environ["SAFECHAT_AUDIT_CHECKPOINT_EVERY"] = "0"
    os.environ["SAFECHAT_POST_RATE_LIMIT"] = "1000000/10"
    os.environ["SAFECHAT_ROOM_CREATE_RATE_LIMIT"] = "1000000/600"
    os.environ["SAFECHAT_ROOM_SETTINGS_RATE_LIMIT"] = "1000000/600"
    os.environ["SAFECHAT_RETENTION_MINIMUM_DAYS"] = "1"
    os.environ["SAFECHAT_BACKUP_RETENTION_DAYS"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
    import django

    django.setup()
