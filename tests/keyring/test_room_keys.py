"""Room keys follow membership: sealed to members, gone with removal, bound to their rows."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection

from audit.models import AuditEvent
from compliance.models import SupervisionItem
from compliance.services.supervision import (
    supervision_item_close,
    supervision_item_escalate,
    supervision_lexicon_create,
    supervision_term_add,
)
from rooms.models import Membership, Message
from rooms.services import membership_add, membership_remove, message_post, room_key_rotate
from safechat.crypto import CryptoError
from safechat.keyring.errors import KeyUnavailableError
from safechat.keyring.models import RoomEpoch, SealedEpochKey, UserKeyPair
from safechat.keyring.services import clear_key_caches, message_decrypt
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
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


def test_a_new_room_seals_its_first_epoch_to_the_owner_and_to_compliance() -> None:
    owner = make_user()

    room = make_room(owner=owner)

    epoch = RoomEpoch.objects.get(room=room)
    assert epoch.number == 1
    copies = SealedEpochKey.objects.filter(epoch=epoch)
    assert {c.user_id for c in copies} == {owner.pk, None}
    assert copies.filter(compliance_key__isnull=False).count() == 1


def test_every_member_reads_a_message_and_a_stranger_cannot() -> None:
    owner, member, stranger = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    message = message_post(sender=member, room=room, text="Bid 101.25 for 5m")

    assert read(message, owner.pk) == "Bid 101.25 for 5m"
    assert read(message, member.pk) == "Bid 101.25 for 5m"
    with pytest.raises(KeyUnavailableError):
        read(message, stranger.pk)


def _tables_holding(marker: str) -> list[str]:
    """Every table with a value holding ``marker`` (text, bytes, JSON: the audit's extra)."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from the schema
            for row in cursor.fetchall():
                for value in row:
                    raw = (
                        bytes(value)
                        if isinstance(value, bytes | memoryview)
                        else str(value).encode()
                    )
                    if marker.encode() in raw:
                        found.append(table)
    return found


def test_no_plaintext_reaches_any_table() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    marker = "UNIQUE-MARKER-7f3a9c"

    message_post(sender=owner, room=room, text=f"confidential {marker}")

    assert _tables_holding(marker) == []


def test_a_marker_in_a_reviewers_note_reaches_no_table_audit_event_or_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a message supervision flags, and two compliance officers
    caplog.set_level(logging.DEBUG)
    officer, second = make_officer(), make_officer()
    lexicon = supervision_lexicon_create(actor=officer, name="Promises")
    supervision_term_add(actor=officer, lexicon=lexicon, kind="phrase", value="guarantee")
    owner = make_user()
    message = message_post(sender=owner, room=make_room(owner=owner), text="I guarantee it")
    item = SupervisionItem.objects.get(message_id=message.pk)
    note_marker, reason_marker = "NOTE-MARKER-5d1e07", "REASON-MARKER-9b4c21"

    # when one escalates it with a note quoting a marker and the other closes it with
    # another
    supervision_item_escalate(actor=officer, item=item, note=f"he wrote {note_marker}")
    supervision_item_close(actor=second, item=item, reason=f"see {reason_marker}")

    # then neither marker is in any table (the item, the audit log) or any log record
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.CLOSED
    for marker in (note_marker, reason_marker):
        assert _tables_holding(marker) == []
        assert marker not in caplog.text


def test_a_ciphertext_moved_to_another_message_or_room_fails() -> None:
    owner = make_user()
    room, other_room = make_room(owner=owner), make_room(owner=owner)
    first = message_post(sender=owner, room=room, text="first")
    second = message_post(sender=owner, room=room, text="second")
    elsewhere = message_post(sender=owner, room=other_room, text="elsewhere")

    # an insider copies ciphertexts between rows
    Message.objects.filter(pk=second.pk).update(ciphertext=first.ciphertext)
    Message.objects.filter(pk=elsewhere.pk).update(ciphertext=first.ciphertext, epoch=first.epoch)

    for moved in Message.objects.filter(pk__in=[second.pk, elsewhere.pk]):
        with pytest.raises(CryptoError):
            read(moved, owner.pk)
    assert read(Message.objects.get(pk=first.pk), owner.pk) == "first"


def test_removing_a_member_deletes_their_keys_and_starts_a_new_epoch() -> None:
    owner, leaver, stayer = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(leaver, stayer))
    before = message_post(sender=owner, room=room, text="before removal")

    membership_remove(actor=owner, room=room, member=leaver)
    clear_key_caches()  # another process, with nothing cached
    after = message_post(sender=owner, room=room, text="after removal")

    assert after.epoch == before.epoch + 1
    assert not SealedEpochKey.objects.filter(epoch__room=room, user=leaver).exists()
    with pytest.raises(KeyUnavailableError):
        read(after, leaver.pk)
    with pytest.raises(KeyUnavailableError):
        read(before, leaver.pk)
    assert read(after, stayer.pk) == "after removal"
    assert read(before, stayer.pk) == "before removal"


def test_a_newcomer_sees_history_only_where_the_room_allows_it() -> None:
    owner = make_user()
    open_room = make_room(owner=owner, history_visible=True)
    closed_room = make_room(owner=owner, history_visible=False)
    old_open = message_post(sender=owner, room=open_room, text="old open")
    old_closed = message_post(sender=owner, room=closed_room, text="old closed")
    room_key_rotate(actor=owner, room=open_room)
    room_key_rotate(actor=owner, room=closed_room)
    newcomer = make_user()

    membership_add(actor=owner, room=open_room, user=newcomer)
    membership_add(actor=owner, room=closed_room, user=newcomer)

    assert read(old_open, newcomer.pk) == "old open"
    with pytest.raises(KeyUnavailableError):
        read(old_closed, newcomer.pk)
    current = message_post(sender=owner, room=closed_room, text="now")
    assert read(current, newcomer.pk) == "now"


def test_a_member_without_manage_rights_cannot_remove_anyone_and_nothing_changes() -> None:
    owner, member, other = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member, other))
    epochs_before = RoomEpoch.objects.filter(room=room).count()
    removals_before = AuditEvent.objects.filter(action="room.member.removed").count()

    with pytest.raises(PermissionDenied):
        membership_remove(actor=member, room=room, member=other)

    assert Membership.objects.filter(room=room, user=other).exists()
    assert SealedEpochKey.objects.filter(epoch__room=room, user=other).exists()
    assert RoomEpoch.objects.filter(room=room).count() == epochs_before
    assert AuditEvent.objects.filter(action="room.member.removed").count() == removals_before
    assert AuditEvent.objects.filter(action="room.access.denied", actor_id=member.pk).count() == 1


def test_the_message_count_ends_the_cryptoperiod(settings: object) -> None:
    settings.SAFECHAT_EPOCH_MAX_MESSAGES = 3  # type: ignore[attr-defined]
    owner = make_user()
    room = make_room(owner=owner)

    epochs = [message_post(sender=owner, room=room, text=f"m{i}").epoch for i in range(7)]

    assert epochs == [1, 1, 1, 2, 2, 2, 3]
    assert RoomEpoch.objects.get(room=room, number=2).reason == RoomEpoch.Reason.CRYPTOPERIOD


def test_private_keys_are_stored_only_wrapped() -> None:
    user = make_user()
    room = make_room(owner=user)
    message_post(sender=user, room=room, text="hello")

    keypair = UserKeyPair.objects.get(user=user)
    from safechat.keyring.services import _user_private_key

    private = _user_private_key(user.pk)
    assert private.to_bytes()[6:] not in bytes(keypair.wrapped_private_key)
    assert keypair.kek_version == 1
