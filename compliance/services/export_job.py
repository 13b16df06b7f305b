"""The export job: an approved request becomes an encrypted, signed archive.

``export_run`` is what the Celery task ``compliance.export_run`` calls, queued when a
request is approved (after the commit). It is idempotent: only an approved request
starts, once (its row lock decides); a request found running, finished or refused is
left alone.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from compliance.ediscovery.archive import archive_stream
from compliance.ediscovery.envelope import archive_aad, archive_encrypt, archive_open_with
from compliance.models import ExportRequest
from compliance.services._common import refused, require_permission
from compliance.services.exports import REQUEST_EXPORT
from files.blobs import blob_delete, blob_exists, blob_read, blob_write
from safechat.actions import action, action_transaction
from safechat.crypto import HpkePublicKey, KeyPurpose
from safechat.keyring.services import export_key_open_for_user, user_public_key

logger = logging.getLogger(__name__)

SYSTEM_EXPORT = SystemActor("ediscovery")


def export_blob_name(export_id: int) -> str:
    return f"exports/{export_id}/archive"


def export_recipient(export: ExportRequest) -> HpkePublicKey:
    """The key the archive is encrypted to: the request's recipient key (base64 of a
    SafeChat HPKE public key), else the requesting officer's own key pair."""
    if export.recipient_public_key:
        raw = base64.b64decode(export.recipient_public_key, validate=True)
        return HpkePublicKey.from_bytes(raw, purpose=KeyPurpose.USER_HPKE)
    return user_public_key(user_id=export.requested_by_id)


@action
def export_run(*, export_id: int) -> ExportRequest | None:
    """Build the archive of an approved export and store it encrypted to its recipient.

    Moves ``approved`` → ``running`` (``export.started``) under the request's row lock,
    then streams: each batch of messages is read and decrypted through the compliance
    key (``export.read`` events of at most 100 epochs each), written into the tar,
    encrypted as it is produced (``compliance.ediscovery.envelope``) and stored as a
    blob; no plaintext reaches a disk. Then ``finished`` (``export.finished``: counts,
    archive size, the manifest's SHA-256; expires after ``SAFECHAT_EXPORT_EXPIRY_HOURS``)
    or, on any error, ``failed`` (``export.failed``: the error's type only), the partial blob
    removed. Returns None when the request was not (or no longer) approved.
    """
    with action_transaction():
        export = ExportRequest.objects.select_for_update(no_key=True).filter(pk=export_id).first()
        if export is None or export.state != ExportRequest.State.APPROVED:
            return None
        export.state = ExportRequest.State.RUNNING
        export.started_at = timezone.now()
        export.save(update_fields=["state", "started_at"])
        audit_record(
            actor=SYSTEM_EXPORT,
            action=AuditAction.EXPORT_STARTED,
            target=export,
            extra={"matter": export.matter, "scope_digest": export.scope_digest},
        )
    name = export_blob_name(export.pk)
    try:
        stream, stats_of = archive_stream(export=export, actor=SYSTEM_EXPORT)
        size = blob_write(
            name,
            archive_encrypt(stream, recipient=export_recipient(export), export_id=export.pk),
        )
        stats = stats_of()
    except Exception as exc:
        logger.exception("eDiscovery export %s failed", export.pk)
        if blob_exists(name):
            blob_delete(name)
        with action_transaction():
            ExportRequest.objects.filter(pk=export.pk).update(
                state=ExportRequest.State.FAILED, error=type(exc).__name__[:200]
            )
            audit_record(
                actor=SYSTEM_EXPORT,
                action=AuditAction.EXPORT_FAILED,
                target=export,
                extra={"error": type(exc).__name__[:200]},
            )
        export.refresh_from_db()
        return export
    with action_transaction():
        now = timezone.now()
        ExportRequest.objects.filter(pk=export.pk).update(
            state=ExportRequest.State.FINISHED,
            finished_at=now,
            expires_at=now + timedelta(hours=settings.SAFECHAT_EXPORT_EXPIRY_HOURS),
        )
        audit_record(
            actor=SYSTEM_EXPORT,
            action=AuditAction.EXPORT_FINISHED,
            target=export,
            extra={
                "messages": stats.messages,
                "revisions": stats.revisions,
                "files": stats.files,
                "tombstones": stats.tombstones,
                "memberships": stats.memberships,
                "integrity_failures": stats.integrity_failures,
                "items": len(stats.items),
                "archive_bytes": size,
                "manifest_sha256": stats.manifest_sha256,
            },
        )
    export.refresh_from_db()
    return export


@dataclass(frozen=True)
class ExportDownload:
    """What a download serves: the file's name, its media type and its bytes (lazily)."""

    filename: str
    content_type: str
    pieces: Iterator[bytes]


@action
def export_download(*, actor: User, export: ExportRequest) -> ExportDownload:
    """Count and record one download of a finished archive by its requester, and return
    its bytes: as stored (sealed to the recipient key given with the request), or, for an
    archive sealed to the requester's own key pair, opened for them (the tar; plaintext
    only in the response, never on a disk).

    Refused (audited ``export.action.refused``, nothing counted) without
    ``compliance.request_export``, for anyone but the requester, for an archive not
    finished, past its expiry, or downloaded ``max_downloads`` times already (also when
    two downloads race: counted under the request's row lock). Locks: the export
    request's row; the audit chain last.
    """
    refusal = AuditAction.EXPORT_ACTION_REFUSED
    require_permission(actor=actor, permission=REQUEST_EXPORT, action=refusal)
    with action_transaction():
        locked = ExportRequest.objects.select_for_update(no_key=True).get(pk=export.pk)
        problem = None
        if locked.requested_by_id != actor.pk:
            problem = ("not the requester", "only the officer who requested it downloads it")
        elif locked.state != ExportRequest.State.FINISHED:
            problem = ("not available", f"this export is {locked.state}, not ready to download")
        elif locked.expires_at is None or locked.expires_at <= timezone.now():
            problem = ("expired", "this export has expired")
        elif locked.downloads >= locked.max_downloads:
            problem = ("download limit", "this export was downloaded as often as allowed")
        if problem is not None:
            raise refused(
                actor=actor, action=refusal, target=locked, reason=problem[0],
                message=problem[1], downloads=locked.downloads,
            )  # fmt: skip
        locked.downloads += 1
        locked.save(update_fields=["downloads"])
        sealed = bool(locked.recipient_public_key)
        audit_record(
            actor=actor,
            action=AuditAction.EXPORT_DOWNLOADED,
            target=locked,
            extra={"download": locked.downloads, "of": locked.max_downloads, "sealed": sealed},
        )
    name = export_blob_name(locked.pk)
    if sealed:
        return ExportDownload(
            f"ediscovery-{locked.pk}.sealed", "application/octet-stream", blob_read(name)
        )
    requester, export_id = actor.pk, locked.pk
    pieces = archive_open_with(
        blob_read(name),
        export_id=export_id,
        open_sealed=lambda key: export_key_open_for_user(
            user_id=requester, sealed=key, aad=archive_aad(export_id)
        ),
    )
    return ExportDownload(f"ediscovery-{locked.pk}.tar", "application/x-tar", pieces)


@action
def export_expire_due() -> int:
    """Expire every finished archive past its expiry: the request becomes ``expired``
    (``export.expired``) and its blob is removed after the commit. Returns how many.
    Locks: each request's row, one transaction each; the audit chain last."""
    due = list(
        ExportRequest.objects.filter(
            state=ExportRequest.State.FINISHED, expires_at__lte=timezone.now()
        ).values_list("pk", flat=True)
    )
    expired = 0
    for export_id in due:
        with action_transaction():
            locked = ExportRequest.objects.select_for_update(no_key=True).get(pk=export_id)
            if locked.state != ExportRequest.State.FINISHED:
                continue
            locked.state = ExportRequest.State.EXPIRED
            locked.save(update_fields=["state"])
            audit_record(
                actor=SYSTEM_EXPORT,
                action=AuditAction.EXPORT_EXPIRED,
                target=locked,
                extra={"downloads": locked.downloads},
            )
            name = export_blob_name(export_id)
            transaction.on_commit(lambda name=name: blob_delete(name))  # type: ignore[misc]
            expired += 1
    return expired
