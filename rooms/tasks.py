"""Scheduled room jobs. They take no key material and no content, only limits."""

from __future__ import annotations

from celery import shared_task

from rooms.models import Room
from rooms.services.epochs import current_epoch, epoch_needs_rotation, room_epoch_start
from safechat.keyring.models import RoomEpoch


# The name predates the task's move to the rooms app; beat schedules and queued tasks
# refer to it, so it stays.
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
