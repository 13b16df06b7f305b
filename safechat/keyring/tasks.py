"""Scheduled key jobs. They take no key material and no content, only limits."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from rooms.models import Room
from safechat.keyring.models import RoomEpoch
from safechat.keyring.rotation import master_key_rotate
from safechat.keyring.services import current_epoch, epoch_needs_rotation, room_epoch_start


@shared_task(name="keyring.rotate_master_key")
def rotate_master_key_task() -> int:
    """Re-wrap anything still under an old master-key version; safe to run any time."""
    return master_key_rotate(batch_size=settings.SAFECHAT_MASTER_ROTATION_BATCH).remaining


@shared_task(name="keyring.rotate_expired_epochs")
def rotate_expired_epochs_task() -> int:
    """Start a new epoch in every active room whose cryptoperiod ended; returns how many."""
    rotated = 0
    for room in Room.objects.filter(archived_at__isnull=True).iterator():
        epoch = current_epoch(room=room)
        # A shredded latest epoch is replaced by the next post; nothing to rotate here.
        if epoch is not None and epoch.shredded_at is None and epoch_needs_rotation(epoch):
            room_epoch_start(room=room, reason=RoomEpoch.Reason.CRYPTOPERIOD)
            rotated += 1
    return rotated
