"""Scheduled key jobs. They take no key material and no content, only limits.

A room's epochs rotate in the rooms app (``rooms.tasks``): when is the room's rule.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from safechat.keyring.rotation import master_key_rotate


@shared_task(name="keyring.rotate_master_key")
def rotate_master_key_task() -> int:
    """Re-wrap anything still under an old master-key version; safe to run any time."""
    return master_key_rotate(batch_size=settings.SAFECHAT_MASTER_ROTATION_BATCH).remaining
