"""Writes of the file vault: one function per action, for the tus edge, the API and tasks."""

from files.services._common import (
    UploadConflictError,
    UploadGoneError,
    UploadInvalidError,
    UploadQuotaError,
    UploadTooLargeError,
    UploadTypeError,
)
from files.services.files import (
    file_delete,
    file_download_record,
    file_integrity_failure_record,
)
from files.services.scanning import file_scan, files_scan_pending
from files.services.uploads import (
    upload_append,
    upload_create,
    upload_for_uploader,
    upload_terminate,
    uploads_expire,
)

__all__ = [
    "UploadConflictError",
    "UploadGoneError",
    "UploadInvalidError",
    "UploadQuotaError",
    "UploadTooLargeError",
    "UploadTypeError",
    "file_delete",
    "file_download_record",
    "file_integrity_failure_record",
    "file_scan",
    "files_scan_pending",
    "upload_append",
    "upload_create",
    "upload_for_uploader",
    "upload_terminate",
    "uploads_expire",
]
