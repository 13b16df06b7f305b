"""Crypto-shredding destroys an epoch's keys, except under legal hold."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit.models import AuditEvent
from compliance.services import legal_hold_place
from rooms.models import Message
from rooms.selectors import message_view
from rooms.services import message_post
from rooms.services.epochs import room_epoch_shred
from safechat.keyring.errors import LegalHoldError
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from safechat.keyring.services import clear_key_caches
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def message_text_for(*, reader: User, message: Message) -> str | None:
    return message_view(reader=reader, message=message).text


def test_shredding_an_epoch_makes_its_messages_unreadable_for_everyone() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    doomed = message_post(sender=owner, room=room, text="to be shredded")
    epoch = RoomEpoch.objects.get(room=room, number=doomed.epoch)

    room_epoch_shred(actor=owner, epoch=epoch)
    clear_key_caches()

    assert not SealedEpochKey.objects.filter(epoch=epoch).exists()
    assert message_text_for(reader=owner, message=doomed) is None
    assert message_text_for(reader=member, message=doomed) is None
    assert AuditEvent.objects.filter(action="key.epoch.shredded").count() == 1
    # the room goes on, under a new epoch
    later = message_post(sender=owner, room=room, text="later")
    assert later.epoch == doomed.epoch + 1
    assert message_text_for(reader=member, message=later) == "later"


def test_a_legal_hold_refuses_shredding_and_destroys_nothing() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    kept = message_post(sender=owner, room=room, text="evidence")
    legal_hold_place(actor=make_officer(), matter="M-1", reason="litigation", rooms=[room])
    epoch = RoomEpoch.objects.get(room=room, number=kept.epoch)
    copies_before = SealedEpochKey.objects.filter(epoch=epoch).count()
    events_before = AuditEvent.objects.filter(action="key.epoch.shredded").count()

    with pytest.raises(LegalHoldError):
        room_epoch_shred(actor=owner, epoch=epoch)

    assert SealedEpochKey.objects.filter(epoch=epoch).count() == copies_before
    assert RoomEpoch.objects.get(pk=epoch.pk).shredded_at is None
    assert AuditEvent.objects.filter(action="key.epoch.shredded").count() == events_before
    clear_key_caches()
    assert message_text_for(reader=owner, message=kept) == "evidence"
