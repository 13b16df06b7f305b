"""A room's key epochs: which epoch is current, who holds its key, when it rotates or is shredded.

The rules are the room's; the keys are the keyring's. These functions lock the room,
read its memberships and settings, record the audit event, and call down into
``safechat.keyring.services`` for the key material (sealing, opening, destroying), which
knows a room only by its id. Guarantees:

* an epoch that has been superseded never encrypts anything new: the current epoch is
  the room's latest, and new content after a shred of it starts a new one;
* epochs are numbered under the room's row lock;
* an epoch that a legal hold covers is never destroyed (``rooms.holds``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from rooms.holds import hold_rules
from rooms.models import Membership, Room
from safechat.actions import action, action_transaction
from safechat.crypto import SymmetricKey
from safechat.keyring.errors import LegalHoldError
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import (
    KEY_SYSTEM,
    epoch_key_destroy,
    epoch_key_issue,
    epoch_keys_grant,
    epoch_keys_revoke,
    file_key_wrap_in_epoch,
    message_encrypt_in_epoch,
)


def current_epoch(*, room: Room) -> RoomEpoch | None:
    """The room's latest epoch, shredded or not: an older epoch never becomes current again."""
    return RoomEpoch.objects.filter(room=room).order_by("-number").first()


def epoch_needs_rotation(epoch: RoomEpoch) -> bool:
    """Whether the epoch's cryptoperiod ended: by age or by messages plus file keys."""
    too_old = epoch.created_at <= timezone.now() - timedelta(
        days=settings.SAFECHAT_EPOCH_MAX_AGE_DAYS
    )
    return too_old or epoch.message_count >= settings.SAFECHAT_EPOCH_MAX_MESSAGES


@transaction.atomic
def room_epoch_start(
    *, room: Room, reason: str, actor: User | SystemActor = KEY_SYSTEM
) -> RoomEpoch:
    """Start the room's next epoch with a fresh key, sealed to every active member and to
    compliance.

    A deactivated member's membership stays, dormant, but receives no new key: the
    deactivation deleted their copies, and a reactivation grants them what a newcomer
    gets (``rooms.services.membership.memberships_resume``). Takes the room's row lock
    (numbering is serialised by it, and a deactivation, which locks the person's rooms,
    is either seen here or revokes this epoch's copy after). Earlier epochs are
    untouched: their messages keep decrypting for whoever holds them.
    """
    Room.objects.select_for_update(no_key=True).filter(pk=room.pk).first()  # serialise numbering
    last = RoomEpoch.objects.filter(room=room).order_by("-number").first()
    number = last.number + 1 if last else 1
    epoch = RoomEpoch.objects.create(room=room, number=number, reason=reason)
    member_ids = Membership.objects.filter(room=room, user__is_active=True).values_list(
        "user_id", flat=True
    )
    recipients = epoch_key_issue(epoch=epoch, user_ids=member_ids)
    audit_record(
        actor=actor,
        action=AuditAction.KEY_EPOCH_CREATED,
        target=room,
        extra={"epoch": number, "reason": reason, "recipients": recipients},
    )
    return epoch


def _epoch_for_new_content(*, room: Room) -> RoomEpoch:
    """The epoch that encrypts the next message or file key, counted against its bound.

    Takes the room's row lock first, so a removal, a deactivation or a shred that
    committed is seen. The latest epoch, unless it was shredded (then a new epoch starts:
    an older one is never used again), it must encrypt nothing more
    (``Room.rekey_reason``: someone joined a room that hides history whom it must not
    reach, or a member was deactivated who may have kept it) or it reached its
    cryptoperiod (age, or messages plus file keys).
    """
    locked = Room.objects.select_for_update(no_key=True).filter(pk=room.pk).first()
    rekey_reason = locked.rekey_reason if locked is not None else ""
    epoch = current_epoch(room=room)
    if epoch is None:
        epoch = room_epoch_start(room=room, reason=RoomEpoch.Reason.CREATED)
    elif rekey_reason:
        # What is posted from now on is under a key only the current members hold: not a
        # deactivated member, and not what a newcomer to a room hiding history must not
        # read (what was posted before stays under keys they never get).
        epoch = room_epoch_start(room=room, reason=rekey_reason)
    elif epoch.shredded_at is not None:
        epoch = room_epoch_start(room=room, reason=RoomEpoch.Reason.SHREDDED)
    elif epoch_needs_rotation(epoch):
        epoch = room_epoch_start(room=room, reason=RoomEpoch.Reason.CRYPTOPERIOD)
    RoomEpoch.objects.filter(pk=epoch.pk).update(message_count=F("message_count") + 1)
    if rekey_reason:
        Room.objects.filter(pk=room.pk).update(rekey_reason="")
    return epoch


def room_rekey_mark(*, room: Room, reason: str) -> None:
    """Make the next message or file key of ``room`` start a new epoch, recorded with
    ``reason`` (the first reason marked wins: one new epoch however many changes come
    before it). Cheap: no key is made until content needs one. Call with the room's
    row locked."""
    Room.objects.filter(pk=room.pk, rekey_reason="").update(rekey_reason=reason)


def room_keys_grant(*, room: Room, user: User) -> int:
    """Seal the room's readable epochs to a new member; returns how many were sealed.

    Every unshredded epoch if the room shows history to newcomers. A newcomer to a room
    that hides history gets no key that protects anything posted before they joined:
    the latest epoch only while nothing is encrypted under it; otherwise none, and the
    room is marked for a new epoch (``room_rekey_mark``, ``member-joined``) so the next
    message or file key starts one sealed to them. Call inside the transaction that
    creates (or, on a reactivation, resumes) the membership, holding the room's row lock.
    """
    if room.history_visible:
        epochs_to_grant = list(
            RoomEpoch.objects.filter(room=room, shredded_at__isnull=True).order_by("number")
        )
    else:
        latest = current_epoch(room=room)
        if latest is not None and latest.shredded_at is None and latest.message_count == 0:
            # Nothing is encrypted under it yet: the newcomer may hold it.
            epochs_to_grant = [latest]
        else:
            # It protects messages (or files) from before they joined: they never get it,
            # and the next content starts an epoch they hold (one, however many join).
            epochs_to_grant = []
            room_rekey_mark(room=room, reason=RoomEpoch.Reason.MEMBER_JOINED)
    return epoch_keys_grant(epochs=epochs_to_grant, user_id=user.pk)


def room_keys_revoke(*, room: Room, user: User) -> int:
    """Delete every sealed copy of this room's epoch keys held by ``user``.

    The caller then starts a new epoch, so nothing posted afterwards is readable
    with any key the user might have kept. Every process forgets that the user
    opened these keys, after commit.
    """
    return epoch_keys_revoke(room_id=room.pk, user_id=user.pk)


@action
def room_epoch_shred(*, actor: User | SystemActor, epoch: RoomEpoch) -> None:
    """Destroy every sealed copy of an epoch key: its messages and files become unreadable.

    Refused while a legal hold covers anything the epoch protects (``rooms.holds``).
    Takes the legal-hold ledger's lock (shared), then the room's row lock. After commit
    every process drops the key and what it rendered from it; the next post starts a new
    epoch (a shredded epoch is never replaced by an older one).
    """
    with action_transaction():
        epoch_shred_locked(actor=actor, epoch=epoch)


def epoch_shred_locked(*, actor: User | SystemActor, epoch: RoomEpoch) -> None:
    """``room_epoch_shred``'s work, inside a caller's transaction (an action that also
    shreds, such as retention): takes the legal-hold ledger's lock (shared; first in the
    lock order, so a caller holding a room's lock must have taken it already), then the
    room's row lock, and refuses while a legal hold covers anything the epoch protects
    (decided under those locks: no hold is placed until the transaction ends). Its key
    events are published after that transaction commits."""
    rules = hold_rules()
    rules.ledger_lock()
    room = Room.objects.select_for_update(no_key=True).get(pk=epoch.room_id)
    if rules.epoch_held(room.pk, epoch.number):
        raise LegalHoldError("a legal hold covers this epoch; its key cannot be destroyed")
    copies = epoch_key_destroy(epoch=epoch)
    audit_record(
        actor=actor,
        action=AuditAction.KEY_EPOCH_SHREDDED,
        target=room,
        extra={"epoch": epoch.number, "copies_destroyed": copies},
    )


def message_encrypt(
    *, room: Room, sender: User, message_uid: uuid.UUID, plaintext: str, revision: int = 0
) -> tuple[int, bytes]:
    """Encrypt a new message under the room's current epoch; returns (epoch, ciphertext).

    Call inside the transaction that stores the message; it takes the room's row lock
    (as ``room_epoch_start`` does), so no message is encrypted under an epoch that a
    committed removal or shred has already replaced. Starts a new epoch first if the
    latest was shredded or reached its cryptoperiod (age or count).
    """
    epoch = _epoch_for_new_content(room=room)
    ciphertext = message_encrypt_in_epoch(
        room_id=room.pk,
        epoch=epoch.number,
        sender_id=sender.pk,
        message_uid=message_uid,
        plaintext=plaintext,
        revision=revision,
    )
    return epoch.number, ciphertext


def file_key_wrap(
    *, room: Room, owner: User, file_uid: uuid.UUID, file_key: SymmetricKey
) -> tuple[int, bytes]:
    """Wrap a file's own key under the room's current epoch key; returns (epoch, wrapped).

    Each wrap is one more GCM encryption under the epoch key: it counts toward the
    epoch's bound like a message. Takes the room's row lock, as a post does.
    """
    epoch = _epoch_for_new_content(room=room)
    wrapped = file_key_wrap_in_epoch(
        room_id=room.pk, epoch=epoch.number, owner_id=owner.pk, file_uid=file_uid, file_key=file_key
    )
    return epoch.number, wrapped
