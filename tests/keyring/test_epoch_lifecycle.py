"""An epoch that was superseded never encrypts anything new (issue 12, cases 1 and 6)."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

from rooms.models import Message
from rooms.services import membership_add, membership_remove, message_post
from rooms.services.epochs import current_epoch, file_key_wrap, room_epoch_shred
from safechat import environment
from safechat.crypto import MAX_MESSAGES_PER_KEY, KeyPurpose, SymmetricKey
from safechat.keyring.errors import KeyUnavailableError
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from safechat.keyring.services import (
    clear_key_caches,
    file_key_unwrap,
    message_decrypt,
)
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def read(message: Message, reader_id: int) -> str:
    return message_decrypt(
        reader_id=reader_id,
        room_id=message.room_id,
        message_uid=message.uid,
        epoch=message.epoch,
        sender_id=message.sender_id,
        ciphertext=bytes(message.ciphertext),
    )


def test_a_post_after_the_current_epoch_is_shredded_starts_a_new_epoch() -> None:
    # given a member who left (epoch 2 started) and epoch 2 shredded
    owner, leaver = make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,))
    message_post(sender=owner, room=room, text="while both were in")
    membership_remove(actor=owner, room=room, member=leaver)
    room_epoch_shred(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=2))

    # then the current epoch is still the shredded one, never epoch 1
    epoch = current_epoch(room=room)
    assert epoch is not None
    assert (epoch.number, epoch.shredded_at is not None) == (2, True)

    # when the owner posts
    clear_key_caches()
    later = message_post(sender=owner, room=room, text="posted after removal and shred")

    # then it is under a new epoch 3, which the removed member never held
    assert later.epoch == 3
    assert RoomEpoch.objects.get(room=room, number=3).reason == RoomEpoch.Reason.SHREDDED
    assert read(later, owner.pk) == "posted after removal and shred"
    with pytest.raises(KeyUnavailableError):
        read(later, leaver.pk)


def test_a_newcomer_to_a_room_hiding_history_gets_no_older_epoch_after_a_shred() -> None:
    # given a room that hides history, whose current epoch 2 was shredded
    owner, leaver, newcomer = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,), history_visible=False)
    before = message_post(sender=owner, room=room, text="said before the newcomer came")
    membership_remove(actor=owner, room=room, member=leaver)
    room_epoch_shred(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=2))

    # when a newcomer is added
    membership_add(actor=owner, room=room, user=newcomer)

    # then they hold no epoch at all: not epoch 1, whose messages predate them
    assert not SealedEpochKey.objects.filter(epoch__room=room, user=newcomer).exists()
    with pytest.raises(KeyUnavailableError):
        read(before, newcomer.pk)
    # and the next post starts epoch 3, sealed to them
    now = message_post(sender=owner, room=room, text="welcome")
    assert now.epoch == 3
    assert read(now, newcomer.pk) == "welcome"


def test_file_key_wraps_count_toward_the_epoch_bound(settings: Settings) -> None:
    settings.SAFECHAT_EPOCH_MAX_MESSAGES = 3
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="one")
    file_keys = [SymmetricKey.generate(KeyPurpose.FILE) for _ in range(3)]
    uids = [uuid.uuid4() for _ in file_keys]

    epochs = [
        file_key_wrap(room=room, owner=owner, file_uid=uid, file_key=key)
        for uid, key in zip(uids, file_keys, strict=True)
    ]

    assert [epoch for epoch, _ in epochs] == [1, 1, 2]
    assert RoomEpoch.objects.get(room=room, number=1).message_count == 3
    for (epoch, wrapped), uid, key in zip(epochs, uids, file_keys, strict=True):
        unwrapped = file_key_unwrap(
            room_id=room.pk, reader_id=owner.pk, file_uid=uid, epoch=epoch, wrapped=wrapped
        )
        assert unwrapped.same_material(key)


def test_a_file_key_is_never_wrapped_under_a_shredded_epoch() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    room_epoch_shred(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1))

    epoch, _ = file_key_wrap(
        room=room,
        owner=owner,
        file_uid=uuid.uuid4(),
        file_key=SymmetricKey.generate(KeyPurpose.FILE),
    )

    assert epoch == 2


@pytest.mark.parametrize("value", [0, MAX_MESSAGES_PER_KEY + 1, 2**32])
def test_an_epoch_bound_above_the_aead_limit_is_refused(value: int) -> None:
    with pytest.raises(ImproperlyConfigured, match="SAFECHAT_EPOCH_MAX_MESSAGES"):
        environment.epoch_max_messages(value)
    assert environment.epoch_max_messages(MAX_MESSAGES_PER_KEY) == MAX_MESSAGES_PER_KEY
