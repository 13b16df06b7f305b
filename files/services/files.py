"""A file's life after its upload: downloads recorded, deletion, integrity failures."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from files.models import StoredFile
from files.services.uploads import VAULT_SYSTEM
from rooms import permissions as perms
from rooms.models import Message, Room
from rooms.permissions import room_permissions_of
from rooms.services import (
    message_file_withdraw,
    permission_refused,
    require_not_archived,
    require_unseparated,
    room_refused,
)
from safechat.actions import action, action_transaction
from safechat.locks import rows_locked


@action
def file_delete(*, actor: User, stored: StoredFile) -> None:
    """Delete a file: hidden from members at once, kept (still encrypted) for compliance
    until retention removes it. The uploader while they may still upload to the room
    (``upload_file``: a compliance officer or a read-only member deletes nothing), or a
    moderator or owner of the room, may. The room message that shares it is deleted with
    it (``message.deleted`` after commit).

    Raises ``Refused`` otherwise, or for an archived room; ``BarrierViolationError``
    (``barrier.refused``, operation ``file.delete``) for another's file while an
    information barrier separates the actor from someone in the room; ``Http404``
    (nothing written) if retention purged the file meanwhile. Locks, in the project's
    order: the room, the message that shares the file (as a retention purge does:
    messages before their files), then the file row; the audit chain last.
    """
    with action_transaction():
        room = rows_locked(Room, [stored.room_id])[0]
        # Read under the room's lock, which a clean scan also holds when it sets the
        # file's message: so the message read here is the one the file keeps.
        current = StoredFile.objects.filter(pk=stored.pk).values("message_id").first()
        if current is not None and current["message_id"] is not None:
            rows_locked(Message, [current["message_id"]])
        locked = rows_locked(StoredFile, [stored.pk])
        if current is None or not locked:  # purged with its message meanwhile
            raise Http404("no such file")
        row = locked[0]
        rights = room_permissions_of(room=room, user=actor)
        visible = row.state in (StoredFile.State.AVAILABLE, StoredFile.State.PENDING_SCAN)
        if perms.VIEW not in rights or not visible:
            raise room_refused(
                actor=actor, room=room, reason="no such file", message="no such file"
            )
        if row.uploader_id != actor.pk and perms.MANAGE_MEMBERS not in rights:
            raise room_refused(
                actor=actor,
                room=room,
                reason="not the uploader",
                message="only the uploader or a moderator can delete this file",
                file=row.pk,
            )
        if perms.MANAGE_MEMBERS not in rights and perms.UPLOAD not in rights:
            raise permission_refused(actor=actor, room=room, permission=perms.UPLOAD)
        require_not_archived(actor=actor, room=room)
        if row.uploader_id != actor.pk:
            # Deleting another's file is a moderator's power over the room: the wall
            # holds (one's own file, like one's own message, may still be withdrawn).
            require_unseparated(actor=actor, room=room, operation="file.delete")
        row.state = StoredFile.State.DELETED
        row.deleted_at = timezone.now()
        row.deleted_by = actor
        row.save(update_fields=["state", "deleted_at", "deleted_by"])
        if row.message_id is not None:
            # Its room message goes with it: hidden from members, kept like the file.
            message_file_withdraw(
                actor=actor, room=room, message_id=row.message_id, at=row.deleted_at
            )
        audit_record(
            actor=actor, action=AuditAction.FILE_DELETED, target=row, extra={"room": room.pk}
        )


@action
def file_download_record(*, actor: User, stored: StoredFile, first: int, last: int) -> None:
    """Record that ``actor`` began downloading bytes ``first``..``last`` of ``stored``."""
    with action_transaction():
        audit_record(
            actor=actor,
            action=AuditAction.FILE_DOWNLOADED,
            target=stored,
            extra={"room": stored.room_id, "first": first, "last": last},
        )


@action
def file_integrity_failure_record(*, reader: User | None, stored: StoredFile, reason: str) -> None:
    """Record that ``stored`` failed authentication while ``reader`` read it."""
    with action_transaction():
        audit_record(
            actor=reader if reader is not None else VAULT_SYSTEM,
            action=AuditAction.FILE_INTEGRITY_FAILED,
            target=stored,
            extra={"room": stored.room_id, "reason": reason, "during": "download"},
        )
