"""What a room's files weigh against its quota (``SAFECHAT_ROOM_FILE_QUOTA_BYTES``)."""

from __future__ import annotations

from django.db.models import Sum

from files.models import StoredFile

# Uploads in progress, files pending their scan and available files. Deleted files are
# kept for compliance but are no longer the room's; infected and expired ones are removed.
COUNTED_STATES = (
    StoredFile.State.UPLOADING,
    StoredFile.State.PENDING_SCAN,
    StoredFile.State.AVAILABLE,
)


def room_files_used_bytes(room_id: int) -> int:
    """The bytes (declared lengths) counted against room ``room_id``'s quota."""
    total = StoredFile.objects.filter(room_id=room_id, state__in=COUNTED_STATES).aggregate(
        total=Sum("declared_length")
    )["total"]
    return int(total or 0)
