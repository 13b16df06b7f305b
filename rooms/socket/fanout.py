"""A new message, fanned out: opened for each reader with their own key copy.

``message.new`` crosses the channel layer as the message's stored ciphertext and what
binds it (``sealed``), never as text. Each subscribed socket opens it with its own
user's copy of the epoch key: from this process's key cache when that user's copy was
opened here recently (no database, so on the event loop), otherwise from the database
on the thread pool. A reader without a copy (removed: removal starts a new epoch, or
joined without history) gets nothing. The HTML is rendered once per process and shared
(``rooms.wire.message_json_shared``).
"""

from __future__ import annotations

import uuid

from accounts.models import User
from rooms.selectors import TEXT_INTEGRITY_FAILURE
from rooms.socket import database
from rooms.socket.database import in_pool
from rooms.wire import WireMessage, message_json, message_json_shared, message_view_sealed
from safechat.crypto import CryptoError
from safechat.events import MessageNew
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.services import message_decrypt, message_decrypt_if_cached


def sealed_open(user_id: int, event: MessageNew, *, cached_only: bool) -> str | None:
    """The text of ``message.new`` opened with ``user_id``'s key copy; None without one.

    ``cached_only``: only with a key this process already opened for this user, which
    needs no database and so may run on the event loop. Raises IntegrityFailure for a
    ciphertext or key copy that fails its check (reported by the keyring unless
    ``cached_only``).
    """
    sealed = event["sealed"]
    decrypt = message_decrypt_if_cached if cached_only else message_decrypt
    try:
        return decrypt(
            reader_id=user_id,
            room_id=int(event["room_id"]),
            message_uid=uuid.UUID(sealed["uid"]),
            epoch=int(sealed["epoch"]),
            sender_id=int(sealed["sender_id"]),
            ciphertext=bytes(sealed["ciphertext"]),
            revision=int(sealed["revision"]),
        )
    except IntegrityFailure:
        raise
    except CryptoError:  # no copy of this epoch's key (removed, or joined without history)
        return None


async def message_new_for(user: User, event: MessageNew) -> WireMessage | None:
    """The ``message`` of a ``message.new`` frame for ``user``; None if they cannot open it.
    A message failing its integrity check is shown as such, never as text, never dropped.
    A message sharing a file is loaded from the database for each reader: the file's name,
    type and digest are sealed under its own key, which each reader opens with theirs."""
    if event["sealed"].get("attachment"):
        loaded: WireMessage | None = await in_pool(database.message_loaded)(
            user, int(event["message_id"])
        )
        return loaded
    try:
        text = sealed_open(user.pk, event, cached_only=True)
    except IntegrityFailure:
        text = None  # opened again in the pool, where the keyring reports it
    if text is None:
        try:
            text = await in_pool(sealed_open)(user.pk, event, cached_only=False)
        except IntegrityFailure:  # shown as such, never as text, never silently dropped
            return message_json(
                message_view_sealed(event, text=None, text_status=TEXT_INTEGRITY_FAILURE)
            )
        if text is None:
            return None
    return await message_json_shared(
        message_view_sealed(event, text=text),
        epoch=int(event["sealed"]["epoch"]),
        revision=int(event["sealed"]["revision"]),
    )
