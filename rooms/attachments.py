"""A message's attachment: a file from the vault, opened for its reader by the files app.

``files`` sits above ``rooms`` in the layers (docs/architecture.md, "Layers"): a file's
message is a ``rooms.Message`` that ``files.StoredFile.message`` points to, but only the
files app can open a file's sealed name, type and digest. So the files app registers,
once, in its ``AppConfig.ready``, the function that does (``attachment_opener_register``),
and the message selectors call it (``attachments_open``) for a page of messages.

An explicit registry, not a signal: one answerer, and a question nobody registered an
answer for is an error (``ImproperlyConfigured``), never silently "no attachment".
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
