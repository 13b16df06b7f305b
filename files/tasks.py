"""The vault's jobs: scan completed uploads, sweep what is pending, expire abandoned ones.

They take ids, never content or keys, and are idempotent (a file that is no longer
pending is left alone; an upload already ended is not ended twice).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from files.scanner import ScannerUnavailable
from files.services import file_scan, files_scan_pending, uploads_expire

# clamd down: try again after a minute, then more slowly; the beat sweep takes over after.
SCAN_RETRY_SECONDS = 60
SCAN_MAX_RETRIES = 10


@shared_task(bind=True, name="files.scan_file", max_retries=SCAN_MAX_RETRIES)
def scan_file_task(self: Any, file_id: int) -> str:
    """Scan one completed upload; a scanner that is down means a retry, never a release."""
    try:
        return file_scan(file_id=file_id)
    except ScannerUnavailable as exc:
        countdown = SCAN_RETRY_SECONDS * (2 ** min(self.request.retries, 5))
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="files.scan_pending")
def scan_pending_task() -> int:
    """Scan every file still pending (after an outage of clamd); returns how many got a verdict."""
    return files_scan_pending()


@shared_task(name="files.expire_uploads")
def expire_uploads_task() -> int:
    """End uploads past their expiry and remove their partial blobs; returns how many."""
    return uploads_expire()
