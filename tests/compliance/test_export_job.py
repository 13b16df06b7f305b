"""The export job (issue 20): an approved export becomes a signed archive, encrypted to its
recipient, holding every revision, deletion, tombstone, membership change, reaction and
file in range and nothing outside it; it verifies offline, and one altered byte fails."""

from __future__ import annotations

import base64
import email
import json
import tarfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from audit.ediscovery_format import MANIFEST, archive_verify
from audit.models import AuditEvent
from audit.signing import public_key, public_key_base64
from audit.verify_ediscovery import main as verify_main
from compliance.ediscovery.archive import EPOCHS_PER_READ, read_parts
from compliance.ediscovery.envelope import archive_decrypt
from compliance.ediscovery.recipient import main as recipient_main
from compliance.models import ExportRequest
from compliance.services import export_approve, export_request
from compliance.services.export_job import export_blob_name, export_run
from files.blobs import blob_exists, blob_read_all
from rooms.models import Message, Room
from rooms.services import message_edit, message_post, room_key_rotate
from safechat.crypto import CryptoError, HpkePrivateKey, KeyPurpose
from safechat.keyring.models import RoomEpoch
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.compliance.test_content_review import a_room_with_history
from tests.files.helpers import upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db


def approved(
    *,
    rooms: Sequence[Room] = (),
    custodians: Sequence[User] = (),
    days: int = 30,
) -> tuple[ExportRequest, HpkePrivateKey]:
    recipient = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    today = timezone.now().date()
    export = export_request(
        actor=make_officer(),
        matter="SEC v. Bank 2026-17",
        reason="subpoena",
        rooms=rooms,
        custodians=custodians,
        starts_on=today - timedelta(days=days),
        ends_on=today,
        recipient_public_key=base64.b64encode(recipient.public_key().to_bytes()).decode(),
    )
    export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)
    return export, recipient


def opened(export: ExportRequest, recipient: HpkePrivateKey, tmp_path: Path) -> Path:
    sealed = blob_read_all(export_blob_name(export.pk))
    path = tmp_path / "archive.tar"
    path.write_bytes(b"".join(archive_decrypt(sealed, private=recipient, export_id=export.pk)))
    return path


def records(path: Path) -> list[dict[str, Any]]:
    with tarfile.open(path) as archive:
        lines: list[dict[str, Any]] = []
        for member in archive:
            if member.name.startswith("records/"):
                handle = archive.extractfile(member)
                assert handle is not None
                lines += [json.loads(line) for line in handle.read().splitlines()]
        return lines


def member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as archive:
        handle = archive.extractfile(name)
        assert handle is not None
        return handle.read()


def test_an_approved_export_holds_every_revision_deletion_tombstone_and_membership(
    tmp_path: Path,
) -> None:
    # given a room's history over three epochs (a rotation, an edit, a deletion, a purge)
    room, _alice, _officer, msgs = a_room_with_history()
    # and a message from before the range, which must stay out
    old = post_aged(sender=User.objects.get(username="owner"), room=room, days=45, text="too old")
    export, recipient = approved(rooms=[room], days=30)

    # when the job runs
    done = export_run(export_id=export.pk)

    # then the export finished and its archive, opened with the recipient's key, verifies
    assert done is not None
    assert done.state == ExportRequest.State.FINISHED
    assert done.expires_at is not None
    path = opened(export, recipient, tmp_path)
    verdict = archive_verify(path, public_key())
    assert verdict.ok, verdict.message
    lines = records(path)
    texts = [(r["message"], r["revision"], r["text"]) for r in lines if r["type"] == "message.text"]
    assert (msgs["first"].pk, 0, "first words") in texts
    assert (msgs["first"].pk, 1, "second thoughts") in texts
    assert (msgs["later"].pk, 0, "after rotation") in texts
    assert (msgs["doomed"].pk, 0, "doomed text") in texts
    assert all(message != old.pk for message, _r, _t in texts)
    assert [r["message"] for r in lines if r["type"] == "message.deleted"] == [msgs["doomed"].pk]
    assert [r["message"] for r in lines if r["type"] == "tombstone"] == [msgs["aged"].pk]
    assert [r["emoji"] for r in lines if r["type"] == "reaction"] == ["👍"]
    changes = [r["change"] for r in lines if r["type"] == "membership"]
    assert "member.added" in changes
    assert "member.removed" in changes
    # and one RFC 5322 message per chat message, a reply threaded to its parent
    mail = email.message_from_bytes(member(path, f"messages/{msgs['first'].pk}.eml"))
    assert mail["Message-ID"] == f"<{msgs['first'].uid}@safechat.invalid>"
    assert "second thoughts" in mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    manifest = json.loads(member(path, MANIFEST))
    assert manifest["counts"]["messages"] == 3
    assert manifest["counts"]["revisions"] == 1
    # and every step is on the record, with no content in it
    actions = list(
        AuditEvent.objects.filter(target_id=str(export.pk), action__startswith="export.")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == [
        "export.requested", "export.approved", "export.started", "export.read", "export.finished"
    ]  # fmt: skip
    recorded = json.dumps(list(AuditEvent.objects.values_list("extra", flat=True)))
    assert "second thoughts" not in recorded
    assert "doomed text" not in recorded


def test_no_plaintext_is_stored_and_only_the_recipient_opens_it(tmp_path: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="confidential figures")
    export, _recipient = approved(rooms=[room])

    export_run(export_id=export.pk)

    sealed = blob_read_all(export_blob_name(export.pk))
    assert b"confidential figures" not in sealed
    stranger = HpkePrivateKey.generate(KeyPurpose.USER_HPKE)
    with pytest.raises(CryptoError):
        b"".join(archive_decrypt(sealed, private=stranger, export_id=export.pk))


def test_a_custodians_export_holds_what_they_sent_and_nothing_of_others(tmp_path: Path) -> None:
    alice, bob = make_user(), make_user()
    room = make_room(members=(alice, bob))
    hers = message_post(sender=alice, room=room, text="from alice")
    message_post(sender=bob, room=room, text="from bob")
    export, recipient = approved(custodians=[alice])

    export_run(export_id=export.pk)

    lines = records(opened(export, recipient, tmp_path))
    assert [(r["message"], r["text"]) for r in lines if r["type"] == "message.text"] == [
        (hers.pk, "from alice")
    ]


def test_a_shared_file_is_in_the_archive_decrypted_as_a_mime_part(
    clamd: OwnClamd, tmp_path: Path
) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    stored = upload_and_scan(actor=owner, room=room, data=b"statement " * 300, name="q3.txt")
    assert stored.message_id is not None
    export, recipient = approved(rooms=[room])

    export_run(export_id=export.pk)

    path = opened(export, recipient, tmp_path)
    assert archive_verify(path, public_key()).ok
    (file,) = [r for r in records(path) if r["type"] == "file"]
    assert file["name"] == "q3.txt"
    assert file["status"] == "ok"
    mail = email.message_from_bytes(member(path, f"messages/{stored.message_id}.eml"))
    (attachment,) = [part for part in mail.walk() if part.get_filename() == "q3.txt"]
    assert attachment.get_payload(decode=True) == b"statement " * 300


def test_one_altered_byte_fails_the_offline_verifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a verified archive and the audit public key in a file
    owner = make_user()
    room = make_room(owner=owner)
    for i in range(3):
        message_post(sender=owner, room=room, text=f"message {i}")
    export, recipient = approved(rooms=[room])
    export_run(export_id=export.pk)
    path = opened(export, recipient, tmp_path)
    key_file = tmp_path / "audit.pub"
    key_file.write_text(public_key_base64())
    assert verify_main([str(path), "--public-key", str(key_file)]) == 0

    # when one byte of an item is changed
    data = bytearray(path.read_bytes())
    at = data.index(b"message 1")
    data[at] ^= 0x01
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(bytes(data))

    # then the verifier fails it (exit 1) and names the item
    assert verify_main([str(tampered), "--public-key", str(key_file)]) == 1
    assert "does not match the manifest" in capsys.readouterr().out


def test_an_altered_manifest_fails_its_signature(tmp_path: Path) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="hello")
    export, recipient = approved(rooms=[room])
    export_run(export_id=export.pk)
    path = opened(export, recipient, tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b'"matter":"SEC')
    data[at + 10] ^= 0x01
    path.write_bytes(bytes(data))

    verdict = archive_verify(path, public_key())

    assert not verdict.ok
    assert "signature" in verdict.message


def test_the_job_runs_once_and_leaves_an_unapproved_request_alone() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="hello")
    export, _recipient = approved(rooms=[room])

    first = export_run(export_id=export.pk)
    second = export_run(export_id=export.pk)

    assert first is not None
    assert first.state == ExportRequest.State.FINISHED
    assert second is None
    assert AuditEvent.objects.filter(action="export.started").count() == 1
    pending = export_request(
        actor=make_officer(),
        matter="m",
        reason="r",
        rooms=[room],
        starts_on=timezone.now().date(),
        ends_on=timezone.now().date(),
    )
    assert export_run(export_id=pending.pk) is None
    assert ExportRequest.objects.get(pk=pending.pk).state == ExportRequest.State.REQUESTED
    assert Message.objects.count() == 1


def test_a_recipient_opens_and_verifies_with_the_offline_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a recipient key pair made with the offline tool, given with the request
    private_file = tmp_path / "recipient.key"
    assert recipient_main(["keygen", str(private_file)]) == 0
    public = capsys.readouterr().out.strip()
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="for the regulator")
    today = timezone.now().date()
    export = export_request(
        actor=make_officer(), matter="m", reason="r", rooms=[room], starts_on=today,
        ends_on=today, recipient_public_key=public,
    )  # fmt: skip
    export_approve(actor=make_officer(), export=export, scope_digest=export.scope_digest)
    export_run(export_id=export.pk)
    downloaded = tmp_path / "archive.sealed"
    downloaded.write_bytes(blob_read_all(export_blob_name(export.pk)))

    # when the recipient opens it, then verifies it with the audit public key
    out = tmp_path / "archive.tar"
    opened_status = recipient_main(
        ["decrypt", str(downloaded), "--private-key", str(private_file),
         "--export", str(export.pk), "--out", str(out)]
    )  # fmt: skip
    verified = verify_main([str(out), "--public-key", public_key_base64()])

    # then both succeed; under another export's number it does not open, and nothing is left
    assert opened_status == 0
    assert verified == 0
    wrong = tmp_path / "wrong.tar"
    assert recipient_main(
        ["decrypt", str(downloaded), "--private-key", str(private_file),
         "--export", str(export.pk + 1), "--out", str(wrong)]
    ) == 1  # fmt: skip
    assert not wrong.exists()
    assert not (tmp_path / "wrong.tar.partial").exists()


def test_a_job_that_fails_keeps_nothing_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # given an approved export whose archive cannot be built (the recipient key fails)
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="hello")
    export, _recipient = approved(rooms=[room])

    def broken(export: ExportRequest) -> None:
        raise CryptoError("no such key")

    monkeypatch.setattr("compliance.services.export_job.export_recipient", broken)

    # when the job runs
    done = export_run(export_id=export.pk)

    # then it failed, nothing is stored, and the failure names only the error's type
    assert done is not None
    assert done.state == ExportRequest.State.FAILED
    assert not blob_exists(export_blob_name(export.pk))
    event = AuditEvent.objects.get(action="export.failed", target_id=str(export.pk))
    assert event.extra == {"error": "CryptoError"}


def test_an_export_over_more_epochs_than_one_read_holds_records_every_epoch_read(
    tmp_path: Path,
) -> None:
    # given a message edited once in each of 520 key epochs after the one it was sent in,
    # and a second message in the last: one batch needing 521 epochs' keys, more than one
    # audit event's details (SAFECHAT_AUDIT_EXTRA_MAX_BYTES, 4096) can name
    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="version 0")
    for n in range(1, 521):
        room_key_rotate(actor=owner, room=room)
        message = message_edit(actor=owner, message=message, text=f"version {n}")
    other = message_post(sender=owner, room=room, text="the last word")
    export, recipient = approved(rooms=[room])

    # when the job runs
    done = export_run(export_id=export.pk)

    # then it finished, every revision readable
    assert done is not None
    assert done.state == ExportRequest.State.FINISHED
    path = opened(export, recipient, tmp_path)
    assert archive_verify(path, public_key()).ok
    texts = [r for r in records(path) if r["type"] == "message.text"]
    assert len(texts) == 522
    assert all(r["status"] == "ok" for r in texts)
    assert {r["text"] for r in texts} == {f"version {n}" for n in range(521)} | {"the last word"}
    # and every epoch read is on the record, in reads of at most EPOCHS_PER_READ epochs,
    # each naming the messages it read for
    reads = list(
        AuditEvent.objects.filter(target_id=str(export.pk), action="export.read").order_by("seq")
    )
    assert len(reads) == 6
    assert all(len(r.extra["epochs"]) <= EPOCHS_PER_READ for r in reads)
    named = [tuple(pair) for r in reads for pair in r.extra["epochs"]]
    epochs = set(RoomEpoch.objects.filter(room=room).values_list("room_id", "number"))
    assert len(epochs) == 521
    assert sorted(named) == sorted(epochs)
    assert reads[-1].extra["last_id"] == other.pk
    assert {r.extra["first_id"] for r in reads} == {message.pk}


def test_read_parts_cut_at_the_limit_and_name_every_pair_once() -> None:
    # given three messages needing 60, 60 (20 shared) and 250 pairs
    first = {(1, n) for n in range(60)}
    second = {(1, n) for n in range(40, 100)}
    third = {(2, n) for n in range(250)}

    # when they are cut into reads
    parts = read_parts([(1, first), (2, second), (3, third)])

    # then no part holds more than the limit, each pair is in exactly one part, in order
    assert [ids for ids, _ in parts] == [[1, 2], [3], [3], [3]]
    assert [len(pairs) for _, pairs in parts] == [100, 100, 100, 50]
    named = [pair for _, pairs in parts for pair in pairs]
    assert sorted(named) == sorted(first | second | third)
    assert len(named) == len(set(named))
