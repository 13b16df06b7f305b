"""Refusals of the vault. Each is a ``safechat.actions.Refused``, recorded once by the
``@action`` that raised it; the subclasses let an edge answer with the right status
(tus: 409 for a conflict, 413 for too large or over quota, 410 for an upload that
is gone, 422 for a type the policy refuses)."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from audit.actions import AuditAction
from files.models import StoredFile
from rooms.models import Room
from safechat.actions import Refused


class UploadInvalidError(Refused):
    """The request is malformed or names an unacceptable file (400)."""


class UploadTooLargeError(Refused):
    """Over the maximum size, or a body running past the declared length (413)."""


class UploadConflictError(Refused):
    """The offset is not the upload's, or another request is writing it (409)."""


class UploadTypeError(Refused):
    """The file's name, declared type or content is refused by the type policy (422)."""


class UploadQuotaError(Refused):
    """The room's file quota would be exceeded (413)."""


class UploadGoneError(Refused):
    """The upload finished, was cancelled or expired: it takes no more bytes (410)."""


def upload_refused(
    cls: type[Refused],
    *,
    actor: User,
    target: Room | StoredFile,
    reason: str,
    message: str,
    **extra: Any,
) -> Refused:
    """A refusal recorded as ``file.upload.refused`` on the room or the upload."""
    return cls(
        message,
        actor=actor,
        action=AuditAction.FILE_UPLOAD_REFUSED,
        target=target,
        reason=reason,
        extra=extra,
    )
