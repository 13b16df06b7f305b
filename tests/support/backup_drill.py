"""The two ends of the restore drill, run inside SafeChat processes started by the test:
``populate`` fills an installation the real services' way; ``contents`` reads everything
back (each message through its sender's keys, each file through its uploader's). Both
print one JSON line on stdout."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.utils import timezone

from audit.services.checkpoints import audit_checkpoint_write
from compliance.services import retention_apply, retention_policy_set
from files.content import decrypted_chunks
from files.models import StoredFile
from rooms.models import Message
from rooms.selectors import message_view
from rooms.services import room_key_rotate
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import file_key_unwrap
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.files.helpers import upload
from tests.rooms.factories import make_room


def populate(marker: str) -> None:
    """Users, two rooms, messages (one expired and shredded by retention), a file, and a
    signed, anchored audit checkpoint; every text and the file's bytes carry ``marker``."""
    officer, owner, member = make_officer(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,), name="Trading desk")
    post_aged(sender=owner, room=room, days=100, text=f"{marker} expired")
    RoomEpoch.objects.filter(room=room).update(created_at=timezone.now() - timedelta(days=101))
    room_key_rotate(actor=owner, room=room)
    post_aged(sender=owner, room=room, days=1, text=f"{marker} kept")
    post_aged(sender=member, room=room, days=0, text=f"{marker} reply")
    other = make_room(owner=member, name="Back office")
    post_aged(sender=member, room=other, days=0, text=f"{marker} elsewhere")
    upload(actor=owner, room=room, data=f"{marker} statement ".encode() * 500, name="q4.dat")
    retention_policy_set(actor=officer, room=None, keep_days=30)
    report = retention_apply()
    audit_checkpoint_write(force=True)
    print(json.dumps({"shredded_epochs": report.totals()["epochs"], **contents_of()}))


def contents_of() -> dict[str, object]:
    messages = {
        str(m.uid): message_view(reader=m.sender, message=m).text
        for m in Message.objects.filter(deleted_at__isnull=True, sender__isnull=False)
        .select_related("sender")
        .order_by("pk")
    }
    files = {}
    for stored in StoredFile.objects.exclude(state=StoredFile.State.DELETED).order_by("pk"):
        key = file_key_unwrap(
            room_id=stored.room_id,
            reader_id=stored.uploader_id,
            file_uid=stored.uid,
            epoch=stored.epoch,
            wrapped=bytes(stored.wrapped_key),
        )
        files[str(stored.uid)] = hashlib.sha256(b"".join(decrypted_chunks(stored, key))).hexdigest()
    return {"messages": messages, "files": files}


def contents() -> None:
    print(json.dumps(contents_of()))
