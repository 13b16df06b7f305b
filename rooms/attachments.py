"""A message's attachment: a file from the vault, opened for its reader by the files app.

``files`` sits above ``rooms`` in the layers (docs/architecture.md, "Layers"): a file's
message is a ``rooms.Message`` that ``files.StoredFile.message`` points to, but only the
files app can open a file's sealed name, type and digest. So the files app registers,
once, in its ``AppConfig.ready``, the function that does (``attachment_opener_register``),
and the message selectors call it (``attachments_open``) for a page of messages.

An explicit registry, not a signal: one answerer, and a question nobody registered an
answer for is an error (``ImproperlyConfigured``), never silently "no attachment".

The same way, the files app answers for the chat page whether a room's files wait for
the malware scanner (``scan_waiting_register``, ``scan_waiting_of``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from accounts.models import User
from rooms.models import Message


@dataclass(frozen=True)
class AttachmentView:
    """What a reader sees of a message's file: its metadata opened with their key."""

    uid: str
    room_id: int
    name: str
    content_type: str
    size: int  # bytes
    sha256: str  # hex, of the plaintext
    uploader_id: int
    uploader: str
    has_preview: bool


# (reader, messages) -> {message id: attachment} for the messages that carry a file the
# reader can open; a message whose file they cannot open (no key, withdrawn) is left out.
AttachmentOpener = Callable[[User, Sequence[Message]], dict[int, AttachmentView]]

_registered: list[AttachmentOpener] = []


def attachment_opener_register(opener: AttachmentOpener) -> None:
    """Register the files app's opener (a second registration replaces the first)."""
    _registered[:] = [opener]


def attachments_open(reader: User, messages: Sequence[Message]) -> dict[int, AttachmentView]:
    """The attachments of ``messages`` that ``reader`` can open, by message id."""
    if not messages:
        return {}
    if not _registered:
        raise ImproperlyConfigured("no attachment opener registered (is files installed?)")
    return _registered[0](reader, messages)


@dataclass(frozen=True)
class ScanWaiting:
    """Whether files can be scanned now (``files.scanner.scanner_state``), and, when they
    cannot, how many of a room's files wait for it (complete, unscanned, invisible)."""

    scanner_ready: bool
    files: int


# room id -> its ScanWaiting; the caller has checked the reader may view the room.
ScanWaitingReader = Callable[[int], ScanWaiting]

_scan_waiting: list[ScanWaitingReader] = []


def scan_waiting_register(reader: ScanWaitingReader) -> None:
    """Register the files app's answer (a second registration replaces the first)."""
    _scan_waiting[:] = [reader]


def scan_waiting_of(room_id: int) -> ScanWaiting:
    """Whether the room's files wait for the malware scanner (``ScanWaiting``)."""
    if not _scan_waiting:
        raise ImproperlyConfigured("no scan-waiting reader registered (is files installed?)")
    return _scan_waiting[0](room_id)
