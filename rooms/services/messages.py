"""Posting, editing, deleting and reacting to messages. Text exists here only in memory."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from rooms import permissions as perms
from rooms import realtime
from rooms.models import Membership, Mention, Message, MessageRevision, Reaction, Room
from rooms.ratelimit import post_rate_check
from rooms.services._common import (
    demand_writable,
    refusals_audited,
    refuse,
    require_not_archived,
    require_room_permission,
)
from safechat.keyring import events as key_events
from safechat.keyring.services import message_encrypt

MAX_MESSAGE_BYTES = 16 * 1024
MAX_EMOJI_LENGTH = 16
_MENTION = re.compile(r"(?<![\w@])@([\w.@+-]{1,150})")


def _validate_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValidationError("a message must be text")
    if not text.strip():
        raise ValidationError("a message cannot be empty")
    if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ValidationError(f"a message is at most {MAX_MESSAGE_BYTES // 1024} KiB")
    return text


def _mentioned_members(*, room: Room, text: str, exclude: int) -> list[int]:
    names = {m.group(1).rstrip(".") for m in _MENTION.finditer(text)}
    if not names:
        return []
    return list(
        Membership.objects.filter(room=room, user__username__in=names)
        .exclude(user_id=exclude)
        .values_list("user_id", flat=True)
    )


def message_post(*, sender: User, room: Room, text: str, parent_id: int | None = None) -> Message:
    """Store a message encrypted under the room's current epoch (``post_message``).

    Mentioned members are notified; subscribers get the ciphertext after commit (each
    opens it with its own key copy), never the text.
    """
    text = _validate_text(text)
    post_rate_check(user_id=sender.pk)  # before the room lock: no Redis wait holds it
    with refusals_audited():
        return _message_insert(sender=sender, room=room, text=text, parent_id=parent_id)


@transaction.atomic
def _message_insert(*, sender: User, room: Room, text: str, parent_id: int | None) -> Message:
    # The room's row lock orders this post after every committed removal and key change
    # in the room (the checks below see them), and gives the room's messages ids in
    # commit order, which a reconnecting client's resync relies on.
    locked = Room.objects.select_for_update().filter(pk=room.pk).first()
    if locked is None:
        raise Http404("no such room")
    room = locked
    demand_writable(actor=sender, room=room, permission=perms.POST)
    parent = None
    if parent_id is not None:
        parent = Message.objects.filter(pk=parent_id, room=room, deleted_at__isnull=True).first()
        if parent is None:
            raise ValidationError("the message you reply to does not exist in this room")
        parent = parent.parent or parent  # threads are one level deep
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
    )
    mentioned = _mentioned_members(room=room, text=text, exclude=sender.pk)
    if mentioned:
        Mention.objects.bulk_create([Mention(message=message, user_id=u) for u in mentioned])
    audit_record(
        actor=sender,
        action=AuditAction.MESSAGE_POSTED,
        target=message,
        extra={"room": room.pk, "epoch": epoch, "mentions": len(mentioned)},
    )

    def broadcast() -> None:
        realtime.message_posted(message=message, sender_name=sender.get_username())
        for user_id in mentioned:
            realtime.user_mentioned(user_id=user_id, room_id=room.pk, message_id=message.pk)

    transaction.on_commit(broadcast)
    return message


def _announce(message: Message, event: str) -> None:
    """Tell the message's room, once the transaction commits, that ``event`` happened to it."""
    transaction.on_commit(
        lambda: realtime.room_event(room_id=message.room_id, event=event, message_id=message.pk)
    )


def _own_live_message(*, actor: User, message: Message, action: str) -> Message:
    if message.deleted_at is not None:
        raise ValidationError("this message was deleted")
    if message.sender_id != actor.pk:
        raise refuse(
            actor=actor,
            room=message.room,
            reason=f"{action} someone else's message",
            error=PermissionDenied(f"you can only {action} your own messages"),
        )
    return message


def message_edit(*, actor: User, message: Message, text: str) -> Message:
    """Replace a message's text; the previous text is kept, encrypted, as a revision."""
    room = message.room
    require_room_permission(actor=actor, room=room, permission=perms.POST)
    require_not_archived(actor=actor, room=room)
    _own_live_message(actor=actor, message=message, action="edit")
    text = _validate_text(text)
    return _message_revise(actor=actor, message=message, text=text)


@transaction.atomic
def _message_revise(*, actor: User, message: Message, text: str) -> Message:
    Room.objects.select_for_update().filter(pk=message.room_id).first()  # as a post does
    message = Message.objects.select_for_update().get(pk=message.pk)
    MessageRevision.objects.create(
        message=message,
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
    audit_record(
        actor=actor,
        action=AuditAction.MESSAGE_EDITED,
        target=message,
        extra={"room": message.room_id, "revision": revision},
    )
    key_events.message_changed(message_id=message.pk)  # renders of the old text, everywhere
    _announce(message, "message.edited")
    return message


def message_delete(*, actor: User, message: Message) -> Message:
    """Hide a message from members; its ciphertext stays for compliance until retention.

    Senders delete their own messages; moderators and owners (``manage_members``) any.
    """
    room = message.room
    is_sender = message.sender_id == actor.pk
    required = perms.VIEW if is_sender else perms.MANAGE_MEMBERS
    require_room_permission(actor=actor, room=room, permission=required)
    require_not_archived(actor=actor, room=room)
    if message.deleted_at is not None:
        return message
    with transaction.atomic():
        message.deleted_at = timezone.now()
        message.deleted_by = actor
        message.save(update_fields=["deleted_at", "deleted_by"])
        audit_record(
            actor=actor,
            action=AuditAction.MESSAGE_DELETED,
            target=message,
            extra={"room": room.pk, "by_sender": is_sender},
        )
        key_events.message_changed(message_id=message.pk)
        _announce(message, "message.deleted")
    return message


def reaction_toggle(*, actor: User, message: Message, emoji: str) -> bool:
    """Add ``emoji`` from ``actor`` to a message, or remove it; returns whether it is now set."""
    require_room_permission(actor=actor, room=message.room, permission=perms.POST)
    require_not_archived(actor=actor, room=message.room)
    emoji = emoji.strip() if isinstance(emoji, str) else ""
    if not emoji or len(emoji) > MAX_EMOJI_LENGTH or any(c.isspace() for c in emoji):
        raise ValidationError("a reaction is one short emoji or word")
    if message.deleted_at is not None:
        raise ValidationError("this message was deleted")
    with transaction.atomic():
        deleted, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        if not deleted:
            Reaction.objects.create(message=message, user=actor, emoji=emoji)
        _announce(message, "message.reactions")
    return not deleted


def read_marker_set(*, actor: User, room: Room, message_id: int) -> int:
    """Move ``actor``'s read marker forward to ``message_id`` (never backwards)."""
    require_room_permission(actor=actor, room=room, permission=perms.VIEW)
    if not Message.objects.filter(pk=message_id, room=room).exists():
        raise ValidationError("no such message in this room")
    return _read_marker_move(actor=actor, room=room, message_id=message_id)


@transaction.atomic
def _read_marker_move(*, actor: User, room: Room, message_id: int) -> int:
    membership = Membership.objects.select_for_update().get(room=room, user=actor)
    if message_id > membership.last_read_message_id:
        membership.last_read_message_id = message_id
        membership.save(update_fields=["last_read_message_id"])
        transaction.on_commit(
            lambda: realtime.room_event(
                room_id=room.pk, event="read.marker", user_id=actor.pk, message_id=message_id
            )
        )
    return membership.last_read_message_id
