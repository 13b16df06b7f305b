"""Posting, editing, deleting and reacting to messages. Text exists here only in memory."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from rooms import permissions as perms
from rooms.errors import (
    ClientKeyInvalidError,
    ClientKeyOtherRoomError,
    IdempotencyKeyReusedError,
)
from rooms.markdown import mention_names
from rooms.models import (
    Membership,
    Mention,
    Message,
    MessageRevision,
    Reaction,
    Room,
    RoomChange,
)
from rooms.ratelimit import Write, write_rate_check
from rooms.selectors import visible_from_seq
from rooms.services._changes import room_change_append
from rooms.services._common import (
    permission_refused,
    require_not_archived,
    require_room_permission,
    require_writable,
    room_refused,
)
from rooms.services.epochs import message_encrypt
from rooms.supervision import posted_inspect
from rooms.wire import message_sealed
from safechat.actions import action, action_transaction
from safechat.events import Event, publish
from safechat.keyring import events as key_events
from safechat.locks import rows_locked
from safechat.unicode_text import (
    is_visible,
    reaction_canonical,
    reaction_same,
    refuse_bidi_explicit,
)

MAX_MESSAGE_BYTES = 16 * 1024
MAX_EMOJI_LENGTH = 16
# Visible ASCII but the comma: a comma is how HTTP joins a header sent twice, so a key
# holding one could not be told from two keys (the API refuses both).
_CLIENT_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,64}")


def _message_too_long(size: int) -> str:
    """The one reason given for a message over ``MAX_MESSAGE_BYTES`` (``size``: its UTF-8
    length in bytes), on every edge; the chat client words it alike before sending."""
    return (
        f"this message is too long ({_kib(size)} KiB): a message may be at most "
        f"{MAX_MESSAGE_BYTES // 1024} KiB of text; shorten it, or share it as a file"
    )


def _kib(size: int) -> str:
    return f"{size / 1024:.1f}".removesuffix(".0")


def _validate_text(text: object) -> str:
    """The one check of a message's text, for every edge (portal, API, socket, admin).

    Text is a sequence of Unicode scalar values: a NUL or a lone surrogate (which JSON
    can carry as an escape but UTF-8 cannot encode) is refused, not stored; so is an
    explicit directional embedding, override or isolate (``refuse_bidi_explicit``), which
    could show a number reversed. A text of no visible character (spaces, or zero-width
    and other invisible characters alone, as a room name's rule reads them) is empty, and
    refused; so is a control character other than a line break (LF, or CR LF) or a tab.
    A refusal raises ``ValidationError`` naming the field
    ``text`` (its ``error_dict``), so the API points at ``#/text`` and a form shows it
    beside its text field.
    """
    try:
        return _text_checked(text)
    except ValidationError as exc:
        raise ValidationError({"text": exc.error_list}) from None


def _text_checked(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationError("a message must be text")
    if "\x00" in text:
        raise ValidationError("a message cannot contain a NUL character")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        raise ValidationError("a message must be valid Unicode (no lone surrogates)") from None
    if not any(is_visible(char) for char in text):
        # spaces alone, or zero-width and other invisible characters alone: the room
        # names' rule (safechat.unicode_text.is_visible)
        raise ValidationError("a message cannot be empty")
    control = next(
        (
            c
            for c in text.replace("\r\n", "\n")
            if unicodedata.category(c) == "Cc" and c not in "\n\t"
        ),
        None,
    )
    if control is not None:
        raise ValidationError(
            f"a message may not contain the control character U+{ord(control):04X} "
            "(line breaks and tabs are fine)",
            code="control_character",
        )
    refuse_bidi_explicit(text)
    if len(encoded) > MAX_MESSAGE_BYTES:
        raise ValidationError(_message_too_long(len(encoded)), code="message_too_long")
    return text


def _room_locked(room_id: int) -> Room:
    """The room's row, locked until the transaction ends (step 3 of the lock order)."""
    locked = rows_locked(Room, [room_id])
    if not locked:
        raise Http404("no such room")
    return locked[0]


def _mentioned_members(*, room: Room, text: str, exclude: int, seq: int) -> list[User]:
    # "@Alice" mentions alice: a name is matched in its canonical form (RFC 8265). Only a
    # member who may read the message (number ``seq``) is mentioned: one who joined a room
    # hiding history after it was posted (``Membership.visible_from_seq``) is not, so an
    # edit naming them neither notifies them nor tells them of history hidden from them.
    names = mention_names(text)
    if not names:
        return []
    return list(
        User.objects.filter(
            memberships__room=room,
            memberships__visible_from_seq__lt=seq,
            username__in=names,
        )
        .exclude(pk=exclude)
        .order_by("username")
    )


def client_key_clean(value: object) -> str | None:
    """A client's idempotency key: 1-64 visible ASCII characters other than the comma, or
    None (absent) for none. Anything else, the empty string included (a key sent empty is
    a mistake, not "no key": each retry would store another message), raises
    ``ClientKeyInvalidError``. The one rule for the socket's ``client_id`` and the API's
    ``Idempotency-Key``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CLIENT_KEY.fullmatch(value):
        raise ClientKeyInvalidError()
    return value


def _client_key_window_start() -> datetime:
    return timezone.now() - timedelta(hours=settings.SAFECHAT_IDEMPOTENCY_HOURS)


def _client_fingerprint(*, text: str, parent_id: int | None) -> str:
    """What a post under an idempotency key stands for: the text and the parent asked for.

    Keyed (HMAC-SHA-256 under the server's secret key), because a bare hash of a short
    message ("yes", "BUY 100") could be guessed back from a copy of the database.
    """
    body = f"{'' if parent_id is None else parent_id}\x00{text}"
    return salted_hmac("rooms.message.client_fingerprint", body, algorithm="sha256").hexdigest()


def _posted_with(*, sender: User, room: Room, client_key: str, fingerprint: str) -> Message | None:
    """The message ``sender`` posted with ``client_key`` recently, if any (as it is now).

    A key used in another room, or for another text or parent, is refused: a replay
    answers only the very post it repeats.
    """
    original = (
        Message.objects.select_related("room")
        .filter(sender=sender, client_key=client_key, created_at__gte=_client_key_window_start())
        .first()
    )
    if original is None:
        return None
    if original.room_id != room.pk:
        raise ClientKeyOtherRoomError()
    # A message stored before fingerprints were kept (empty) is answered as before.
    if original.client_fingerprint and not constant_time_compare(
        original.client_fingerprint, fingerprint
    ):
        raise IdempotencyKeyReusedError()
    return original


@action
def message_post(
    *,
    sender: User,
    room: Room,
    text: str,
    parent_id: int | None = None,
    client_key: str | None = None,
) -> Message:
    """Store a message encrypted under the room's current epoch (``post_message``).

    Mentioned members are notified; subscribers get the ciphertext after commit (each
    opens it with its own key copy), never the text.

    ``client_key`` makes the post idempotent: a repeat with the same key (a retry after a
    timeout, "send again") returns the original message for at least
    ``SAFECHAT_IDEMPOTENCY_HOURS``, as it is now (edited or deleted since, say), and two
    identical posts at the same instant store one (a unique constraint decides). A
    repeat with another text or parent is refused (``IdempotencyKeyReusedError``).
    Refused (``barrier.refused``) while an information barrier separates the sender from
    another member of the room (``require_unseparated``, under the room's lock).
    The text is matched for supervision in the same transaction
    (``rooms.supervision.posted_inspect``, answered by the compliance app: a match or a
    sample is queued with the post).
    Locks: the sender (only with ``client_key``), then the room; the audit chain last.
    A new epoch's audit event comes before the message's insert, whose ``KEY SHARE``
    on the sender and the parent never waits (docs/architecture.md).
    """
    text = _validate_text(text)
    client_key = client_key_clean(client_key)
    fingerprint = "" if client_key is None else _client_fingerprint(text=text, parent_id=parent_id)
    if client_key is not None:
        original = _posted_with(
            sender=sender, room=room, client_key=client_key, fingerprint=fingerprint
        )
        if original is not None:
            return original  # a retry: not counted against the rate either
    write_rate_check(user_id=sender.pk, write=Write.POST)  # before the room lock
    try:
        with action_transaction():
            return _message_insert(
                sender=sender,
                room=room,
                text=text,
                parent_id=parent_id,
                client_key=client_key,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        # The same key posted at the same instant in another room of this sender's (the
        # room lock orders identical posts in one room, so the insert's re-check wins).
        if client_key is None:
            raise
        original = _posted_with(
            sender=sender, room=room, client_key=client_key, fingerprint=fingerprint
        )
        if original is None:
            raise
        return original


def _parent_locked(*, sender: User, room: Room, parent_id: int) -> Message:
    """The message a reply is filed under (the thread's root: threads are one level
    deep), locked with the message replied to, in ascending id order, after the room and
    before any audit append. A retention purge deleting either at this instant finishes
    first (then it is gone: refused, or the reply goes under what is left) or waits for
    this post and unlinks the reply; so the insert's ``KEY SHARE`` never waits.
    Raises ``ValidationError`` if the message replied to is not one the sender may see.
    """
    root_id = Message.objects.filter(pk=parent_id, room=room).values_list("parent_id", flat=True)
    wanted = {parent_id, *(pk for pk in root_id if pk is not None)}
    locked = {m.pk: m for m in rows_locked(Message, wanted)}
    parent = locked.get(parent_id)
    if (
        parent is None
        or parent.room_id != room.pk
        or parent.deleted_at is not None
        # one posted before the sender joined a room hiding history is not theirs to see
        or parent.seq <= visible_from_seq(reader=sender, room=room)
    ):
        raise ValidationError("the message you reply to does not exist in this room")
    if parent.parent_id is not None and parent.parent_id in locked:
        return locked[parent.parent_id]
    return parent


def _message_insert(
    *,
    sender: User,
    room: Room,
    text: str,
    parent_id: int | None,
    client_key: str | None,
    fingerprint: str,
) -> Message:
    if client_key is not None:
        # The sender's row first (users come before rooms): posts with one key queue
        # here, so the (sender, key) unique index never makes one wait after another
        # started a new epoch and so appended to the audit chain.
        rows_locked(User, [sender.pk])
    # The room's row lock orders this post after every committed removal and key change
    # in the room (the checks below see them), and gives the room's messages ids in
    # commit order, which a reconnecting client's resync relies on.
    room = _room_locked(room.pk)
    require_writable(actor=sender, room=room, permission=perms.POST, operation="message.post")
    if client_key is not None:
        # Identical posts queue on the room's lock: the second finds the first here.
        original = _posted_with(
            sender=sender, room=room, client_key=client_key, fingerprint=fingerprint
        )
        if original is not None:
            return original
        # A key older than the window is free again.
        Message.objects.filter(
            sender=sender, client_key=client_key, created_at__lt=_client_key_window_start()
        ).update(client_key=None, client_fingerprint="")
    parent = None
    if parent_id is not None:
        parent = _parent_locked(sender=sender, room=room, parent_id=parent_id)
    seq = room.message_seq + 1
    Room.objects.filter(pk=room.pk).update(message_seq=seq)
    uid = uuid.uuid4()
    epoch, ciphertext = message_encrypt(room=room, sender=sender, message_uid=uid, plaintext=text)
    message = Message.objects.create(
        uid=uid,
        room=room,
        seq=seq,
        sender=sender,
        parent=parent,
        epoch=epoch,
        ciphertext=ciphertext,
        client_key=client_key,
        client_fingerprint=fingerprint,
    )
    mentioned = _mentioned_members(room=room, text=text, exclude=sender.pk, seq=seq)
    if mentioned:
        Mention.objects.bulk_create([Mention(message=message, user=u) for u in mentioned])
    # Supervision matches the text in memory now, in this transaction (before the audit
    # append: the queue item's insert is a new row and waits for nothing).
    posted_inspect(message=message, text=text)
    audit_record(
        actor=sender,
        action=AuditAction.MESSAGE_POSTED,
        target=message,
        extra={"room": room.pk, "epoch": epoch, "mentions": len(mentioned)},
    )
    room_change_append(room_id=room.pk, kind=RoomChange.Kind.MESSAGE_CREATED, message_id=message.pk)

    publish(
        Event.MESSAGE_NEW,
        room_id=room.pk,
        message_id=message.pk,
        sealed=message_sealed(message=message, sender=sender, mentioned=mentioned),
    )
    for user in mentioned:
        publish(Event.MENTION, to_user=user.pk, room_id=room.pk, message_id=message.pk)
    return message


def message_file_insert(*, room: Room, uploader: User, file_id: int) -> Message:
    """The message that shares a file in ``room``: its next seq, ``uploader`` as sender.

    For the vault, inside the transaction that makes the file available (a clean scan),
    with the room's row already locked by the caller (the lock order's room step): the
    file appears in the message stream exactly when it becomes downloadable, numbered
    like any post, so history rules (``visible_from_seq``), ordering and resync hold for it
    as for text. Its text is empty, encrypted under the current epoch like a post; the
    file's name, type and digest stay sealed under the file's own key
    (``rooms.attachments``). Subscribers get ``message.new`` after commit.
    """
    room = _room_locked(room.pk)  # already held: a no-op re-lock that returns it fresh
    seq = room.message_seq + 1
    Room.objects.filter(pk=room.pk).update(message_seq=seq)
    uid = uuid.uuid4()
    epoch, ciphertext = message_encrypt(room=room, sender=uploader, message_uid=uid, plaintext="")
    message = Message.objects.create(
        uid=uid, room=room, seq=seq, sender=uploader, epoch=epoch, ciphertext=ciphertext
    )
    audit_record(
        actor=uploader,
        action=AuditAction.MESSAGE_POSTED,
        target=message,
        extra={"room": room.pk, "epoch": epoch, "mentions": 0, "file": file_id},
    )
    room_change_append(room_id=room.pk, kind=RoomChange.Kind.MESSAGE_CREATED, message_id=message.pk)
    publish(
        Event.MESSAGE_NEW,
        room_id=room.pk,
        message_id=message.pk,
        sealed=message_sealed(message=message, sender=uploader, mentioned=[], attachment=True),
    )
    return message


def _message_locked(message_id: int) -> Message:
    """The message, locked; ``Http404`` if it is gone (purged by retention meanwhile)."""
    locked = Message.objects.select_for_update(no_key=True).filter(pk=message_id).first()
    if locked is None:
        raise Http404("no such message")
    return locked


def message_file_withdraw(*, actor: User, room: Room, message_id: int, at: datetime) -> None:
    """Hide the message that shares a file being deleted (``files.services.file_delete``):
    gone for members at ``at``, kept (still encrypted) like the file until retention.

    Inside the caller's transaction, with the room's, the message's and then the file's
    rows already locked (the lock order's room and messages-then-files steps); the caller
    decided who may. Records ``message.deleted`` (``file``: true), then appends the change
    feed's entry; subscribers get ``message.deleted`` after commit. A message already
    deleted, or purged, is left as it is.
    """
    locked = Message.objects.select_for_update(no_key=True).filter(pk=message_id, room=room).first()
    if locked is None or locked.deleted_at is not None:  # purged by retention, or deleted
        return
    locked.deleted_at, locked.deleted_by = at, actor
    locked.save(update_fields=["deleted_at", "deleted_by"])
    audit_record(
        actor=actor,
        action=AuditAction.MESSAGE_DELETED,
        target=locked,
        extra={"room": room.pk, "by_sender": locked.sender_id == actor.pk, "file": True},
    )
    room_change_append(room_id=room.pk, kind=RoomChange.Kind.MESSAGE_DELETED, message_id=locked.pk)
    key_events.message_changed(message_id=locked.pk)
    publish(Event.MESSAGE_DELETED, room_id=room.pk, message_id=locked.pk)


def _own_live_message(*, actor: User, message: Message, action: str) -> Message:
    if message.deleted_at is not None:
        raise ValidationError("this message was deleted")
    if message.sender_id != actor.pk:
        raise room_refused(
            actor=actor,
            room=message.room,
            reason=f"{action} someone else's message",
            message=f"you can only {action} your own messages",
        )
    return message


@action
def message_edit(*, actor: User, message: Message, text: str) -> Message:
    """Replace a message's text; the previous text is kept, encrypted, as a revision.

    Refused (``barrier.refused``) while an information barrier separates the author from
    another member of the room, as a post is. The new text is matched for supervision
    in the same transaction, as a post's is. Locks: the room (the permission, the
    archive and the barrier are checked again under it), then the message; the audit
    chain last.
    """
    room = message.room
    require_room_permission(actor=actor, room=room, permission=perms.POST)
    require_not_archived(actor=actor, room=room)
    _own_live_message(actor=actor, message=message, action="edit")
    text = _validate_text(text)
    write_rate_check(user_id=actor.pk, write=Write.EDIT)
    with action_transaction():
        return _message_revise(actor=actor, message=message, text=text)


def _message_revise(*, actor: User, message: Message, text: str) -> Message:
    # The room, then the message (as a post does); checks again under them.
    room = _room_locked(message.room_id)
    require_writable(actor=actor, room=room, permission=perms.POST, operation="message.edit")
    message = _message_locked(message.pk)
    if message.deleted_at is not None:
        raise ValidationError("this message was deleted")
    MessageRevision.objects.create(
        message=message,
        room_id=message.room_id,
        revision=message.revision,
        epoch=message.epoch,
        ciphertext=message.ciphertext,
        created_at=message.edited_at or message.created_at,
    )
    revision = message.revision + 1
    epoch, ciphertext = message_encrypt(
        room=message.room, sender=actor, message_uid=message.uid, plaintext=text, revision=revision
    )
    message.epoch, message.ciphertext, message.revision = epoch, ciphertext, revision
    message.edited_at = timezone.now()
    message.save(update_fields=["epoch", "ciphertext", "revision", "edited_at"])
    # The mentions follow the text: a name taken out is no longer a mention, a name put
    # in is one, and only its member is notified (the others were already).
    named = {
        u.pk
        for u in _mentioned_members(
            room=room, text=text, exclude=message.sender_id, seq=message.seq
        )
    }
    before = set(Mention.objects.filter(message=message).values_list("user_id", flat=True))
    Mention.objects.filter(message=message, user_id__in=before - named).delete()
    added = sorted(named - before)
    Mention.objects.bulk_create([Mention(message=message, user_id=u) for u in added])
    posted_inspect(message=message, text=text)  # the new revision, as a post
    audit_record(
        actor=actor,
        action=AuditAction.MESSAGE_EDITED,
        target=message,
        extra={"room": message.room_id, "revision": revision, "mentions": len(named)},
    )
    room_change_append(
        room_id=message.room_id, kind=RoomChange.Kind.MESSAGE_EDITED, message_id=message.pk
    )
    key_events.message_changed(message_id=message.pk)  # renders of the old text, everywhere
    publish(Event.MESSAGE_EDITED, room_id=message.room_id, message_id=message.pk)
    for user_id in added:
        publish(Event.MENTION, to_user=user_id, room_id=message.room_id, message_id=message.pk)
    return message


@action
def message_delete(*, actor: User, message: Message) -> Message:
    """Hide a message from members; its ciphertext stays for compliance until retention.

    Senders delete their own messages while they may still post in the room
    (``post_message``: a sender made a compliance officer or a read-only member deletes
    nothing, their messages stay on the record); moderators and owners
    (``manage_members``) delete any.
    Locks: the room (the permission and the archive are checked again under it), then
    the message (of two deletions at the same instant, one is recorded); audit last.
    """
    room = message.room
    required = perms.POST if message.sender_id == actor.pk else perms.MANAGE_MEMBERS
    require_room_permission(actor=actor, room=room, permission=required)
    require_not_archived(actor=actor, room=room)
    if message.deleted_at is not None:
        return message
    write_rate_check(user_id=actor.pk, write=Write.DELETE)
    with action_transaction():
        return _message_hide(actor=actor, message=message, permission=required)


def _message_hide(*, actor: User, message: Message, permission: str) -> Message:
    room = _room_locked(message.room_id)
    if permission == perms.POST:
        # Retracting one's own words writes nothing new: a sender a barrier separates
        # from someone in the room may still do it (the record keeps the message).
        require_room_permission(actor=actor, room=room, permission=permission)
        require_not_archived(actor=actor, room=room)
    else:  # moderating another's message is a power over the room: the wall holds
        require_writable(actor=actor, room=room, permission=permission, operation="message.delete")
    locked = _message_locked(message.pk)
    if locked.deleted_at is not None:
        return locked
    locked.deleted_at = timezone.now()
    locked.deleted_by = actor
    locked.save(update_fields=["deleted_at", "deleted_by"])
    audit_record(
        actor=actor,
        action=AuditAction.MESSAGE_DELETED,
        target=locked,
        extra={"room": room.pk, "by_sender": locked.sender_id == actor.pk},
    )
    room_change_append(room_id=room.pk, kind=RoomChange.Kind.MESSAGE_DELETED, message_id=locked.pk)
    key_events.message_changed(message_id=locked.pk)
    publish(Event.MESSAGE_DELETED, room_id=locked.room_id, message_id=locked.pk)
    message.deleted_at, message.deleted_by = locked.deleted_at, actor
    return locked


@action
def reaction_toggle(*, actor: User, message: Message, emoji: str) -> bool:
    """Add ``emoji`` from ``actor`` to a message, or remove it; returns whether it is now set.

    ``emoji`` is stored in its one spelling (``safechat.unicode_text.reaction_canonical``,
    the fully-qualified emoji): "❤", "❤︎" and "❤️" set and unset the same reaction,
    whichever spelling was stored earlier.

    Two toggles at the same instant never fail: if another request set the same
    reaction first, this one answers the state that won (set) instead of a conflict.
    Refused (``barrier.refused``) while an information barrier separates ``actor`` from
    another member of the room, as a post is. Locks: the room (the permission, the
    archive, the barrier and the message's deletion are checked again under it), then
    the reaction's unique constraint decides.
    """
    require_room_permission(actor=actor, room=message.room, permission=perms.POST)
    require_not_archived(actor=actor, room=message.room)
    emoji = emoji.strip() if isinstance(emoji, str) else ""
    if len(emoji) > MAX_EMOJI_LENGTH:
        raise ValidationError("a reaction is a single emoji", code="reaction_not_emoji")
    # Never words (a reaction is stored unencrypted), and one spelling per emoji: "❤" and
    # "❤️" are one reaction.
    emoji = reaction_canonical(emoji)
    if message.deleted_at is not None:
        raise ValidationError("this message was deleted")
    write_rate_check(user_id=actor.pk, write=Write.REACT)
    with action_transaction():
        return _reaction_flip(actor=actor, message=message, emoji=emoji)


def _reaction_flip(*, actor: User, message: Message, emoji: str) -> bool:
    room = _room_locked(message.room_id)
    require_writable(actor=actor, room=room, permission=perms.POST, operation="reaction.toggle")
    if Message.objects.filter(pk=message.pk, deleted_at__isnull=False).exists():
        raise ValidationError("this message was deleted")
    # Any spelling stored before reactions took one (migration-free): "❤" counts as "❤️".
    own = Reaction.objects.filter(message=message, user=actor).values_list("pk", "emoji")
    same = [pk for pk, stored in own if reaction_same(stored, emoji)]
    deleted, _ = Reaction.objects.filter(pk__in=same).delete()
    if deleted:
        publish(Event.MESSAGE_REACTIONS, room_id=message.room_id, message_id=message.pk)
        return False
    try:
        with transaction.atomic():  # a savepoint: the unique constraint decides a race
            Reaction.objects.create(message=message, user=actor, emoji=emoji)
    except IntegrityError:
        return True  # set at the same instant by another request: that state won
    publish(Event.MESSAGE_REACTIONS, room_id=message.room_id, message_id=message.pk)
    return True


@action
def read_marker_set(*, actor: User, room: Room, message_id: int) -> int:
    """Move ``actor``'s read marker forward to ``message_id`` (never backwards).

    ``message_id`` must name a message of the room that ``actor`` may read: one posted
    after they joined a room hiding history (``Membership.visible_from_seq``) is the
    same ``ValidationError`` as an id naming nothing, so a marker never reveals which
    ids exist before one's time. Locks: the room, then the reader's membership. A reader
    removed at the same instant is refused (audited) under the room's lock, never
    answered with an error.
    """
    require_room_permission(actor=actor, room=room, permission=perms.VIEW)
    _require_readable(room=room, reader=actor, message_id=message_id)
    write_rate_check(user_id=actor.pk, write=Write.READ_MARKER)
    with action_transaction():
        return _read_marker_move(actor=actor, room=room, message_id=message_id)


def _require_readable(*, room: Room, reader: User, message_id: int) -> None:
    after = Membership.objects.filter(room=room, user=reader).values("visible_from_seq")[:1]
    if not Message.objects.filter(pk=message_id, room=room, seq__gt=Subquery(after)).exists():
        raise ValidationError("no such message in this room")


def _read_marker_move(*, actor: User, room: Room, message_id: int) -> int:
    room = _room_locked(room.pk)
    require_room_permission(actor=actor, room=room, permission=perms.VIEW)
    membership = (
        Membership.objects.select_for_update(no_key=True).filter(room=room, user=actor).first()
    )
    if membership is None:  # removal also drops the permission; kept for defence in depth
        raise permission_refused(actor=actor, room=room, permission=perms.VIEW)
    _require_readable(room=room, reader=actor, message_id=message_id)
    if message_id > membership.last_read_message_id:
        membership.last_read_message_id = message_id
        membership.save(update_fields=["last_read_message_id"])
        publish(Event.READ_MARKER, room_id=room.pk, user_id=actor.pk, message_id=message_id)
    return membership.last_read_message_id
