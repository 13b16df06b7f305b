"""Content review: a compliance officer reads a room's or a custodian's content through
the compliance key, every page one audit event naming what was shown (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from compliance.selectors.review import (
    ReviewKind,
    ReviewMessage,
    ReviewTombstone,
    TextStatus,
    content_review_custodian,
    content_review_room,
)
from compliance.services import retention_apply, retention_policy_set
from rooms.models import Message, Room
from rooms.services import (
    membership_add,
    membership_remove,
    message_delete,
    message_edit,
    message_post,
    reaction_toggle,
    room_key_rotate,
)
from safechat.crypto.providers import key_file_add_version
from safechat.keyring import integrity
from safechat.keyring.models import ComplianceKeyPair, SealedEpochKey
from safechat.keyring.provider import reset_provider
from safechat.keyring.rotation import master_key_rotate
from safechat.keyring.services import clear_key_caches
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.compliance.factories import make_officer, post_aged
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

VIEWED = "compliance.content.viewed"
SECRETS = ("first words", "second thoughts", "after rotation", "doomed text", "aged secret")


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def viewed_since(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq, action=VIEWED).order_by("seq"))


def a_room_with_history() -> tuple[Room, User, User, dict[str, Message]]:
    """A room over three epochs: an edit across a rotation, a deletion, a reaction, a
    member removed, and one aged message purged by retention (a tombstone)."""
    owner, alice = make_user(username="owner"), make_user(username="alice")
    room = make_room(owner=owner, members=(alice,), name="Treasury")
    aged = post_aged(sender=alice, room=room, days=10, text="aged secret")
    first = message_post(sender=alice, room=room, text="first words")
    room_key_rotate(actor=User.objects.get(pk=owner.pk), room=room)
    message_edit(actor=alice, message=first, text="second thoughts")
    room_key_rotate(actor=User.objects.get(pk=owner.pk), room=room)
    later = message_post(sender=alice, room=room, text="after rotation")
    doomed = message_post(sender=owner, room=room, text="doomed text")
    message_delete(actor=owner, message=doomed)
    reaction_toggle(actor=owner, message=later, emoji="👍")
    bob = make_user(username="bob")
    membership_add(actor=User.objects.get(pk=owner.pk), room=room, user=bob)
    membership_remove(actor=User.objects.get(pk=owner.pk), room=room, member=bob)
    officer = make_officer(username="officer")
    retention_policy_set(actor=officer, room=room, keep_days=5)
    retention_apply()
    return room, alice, officer, {"aged": aged, "first": first, "later": later, "doomed": doomed}


def test_an_officer_reads_every_revision_deletion_and_tombstone_across_epochs() -> None:
    # given a room with history over three epochs and a purged message
    room, _alice, officer, msgs = a_room_with_history()
    seq = last_seq()

    # when the officer reviews the room
    page = content_review_room(officer=officer, room=room)

    # then every text of every message is there, decrypted, oldest revision first
    by_id = {item.id: item for item in page.items}
    first = by_id[msgs["first"].pk]
    assert isinstance(first, ReviewMessage)
    assert [(t.text, t.status) for t in first.texts] == [
        ("first words", TextStatus.OK),
        ("second thoughts", TextStatus.OK),
    ]
    assert first.texts[0].epoch < first.texts[1].epoch
    doomed = by_id[msgs["doomed"].pk]
    assert isinstance(doomed, ReviewMessage)
    assert doomed.deleted_at is not None
    assert doomed.deleted_by == "owner"
    assert doomed.texts[-1].text == "doomed text"
    later = by_id[msgs["later"].pk]
    assert isinstance(later, ReviewMessage)
    assert [r[:2] for r in later.reactions] == [("👍", "owner")]
    tombstone = by_id[msgs["aged"].pk]
    assert isinstance(tombstone, ReviewTombstone)
    assert [item.id for item in page.items] == sorted(by_id)
    # and the showing is exactly one event naming what was shown, without content
    (event,) = viewed_since(seq)
    assert event.actor_id == officer.pk
    assert event.target_type == "rooms.room"
    assert event.target_id == str(room.pk)
    assert event.extra["messages"] == 3
    assert event.extra["tombstones"] == 1
    assert event.extra["first_id"] == msgs["aged"].pk
    assert event.extra["last_id"] == msgs["doomed"].pk
    assert len(event.extra["epochs"]) == 3
    recorded = json.dumps(event.extra)
    assert not any(secret in recorded for secret in SECRETS)
    assert AuditEvent.objects.filter(seq__gt=seq).exclude(action=VIEWED).count() == 0


def test_pages_are_bounded_and_continue_where_they_stopped() -> None:
    # given seven messages
    owner = make_user()
    room = make_room(owner=owner)
    posted = [message_post(sender=owner, room=room, text=f"m{i}").pk for i in range(7)]
    officer = make_officer()

    # when the officer pages through three at a time
    seen, after, pages = [], 0, 0
    while True:
        page = content_review_room(officer=officer, room=room, after=after, limit=3)
        seen += [item.id for item in page.items]
        pages += 1
        assert len(page.items) <= 3
        if page.next_after is None:
            break
        after = page.next_after

    # then each message is shown once, in order, one event per page
    assert seen == posted
    assert pages == 3


def test_membership_changes_are_a_page_of_their_own() -> None:
    room, _alice, officer, _msgs = a_room_with_history()
    seq = last_seq()

    page = content_review_room(officer=officer, room=room, kind=ReviewKind.MEMBERSHIP)

    changes = [(c.person, c.change) for c in page.items]  # type: ignore[union-attr]
    assert ("bob", "member.added") in changes
    assert ("bob", "member.removed") in changes
    (event,) = viewed_since(seq)
    assert event.extra["kind"] == "membership"
    assert event.extra["changes"] == len(changes)


def test_a_custodians_review_holds_what_they_sent_in_every_room() -> None:
    # given alice writing in two rooms, and someone else writing too
    alice, other = make_user(), make_user()
    one = make_room(members=(alice,), name="One")
    two = make_room(members=(alice, other), name="Two")
    mine = [
        message_post(sender=alice, room=one, text="in one").pk,
        message_post(sender=alice, room=two, text="in two").pk,
    ]
    message_post(sender=other, room=two, text="not hers")
    officer = make_officer()
    seq = last_seq()

    # when the officer reviews alice
    page = content_review_custodian(officer=officer, custodian=alice)

    # then exactly her messages, decrypted, under one event naming her
    assert [item.id for item in page.items] == mine
    assert [item.texts[-1].text for item in page.items] == ["in one", "in two"]  # type: ignore[union-attr]
    (event,) = viewed_since(seq)
    assert event.target_id == str(alice.pk)
    assert event.extra["custodian"] == alice.pk
    assert len(event.extra["epochs"]) == 2


def test_a_tampered_sealed_copy_is_shown_as_an_integrity_failure_and_audited() -> None:
    # given a message whose compliance copy of the epoch key was altered in the database
    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="tampered with")
    copy = SealedEpochKey.objects.get(epoch__room=room, compliance_key__isnull=False)
    sealed = bytearray(copy.sealed)
    sealed[-1] ^= 1
    SealedEpochKey.objects.filter(pk=copy.pk).update(sealed=bytes(sealed))
    integrity.forget_reported()
    officer = make_officer()
    seq = last_seq()

    # when the officer opens the room's page in the admin
    response = client_for(officer).get(f"/admin/compliance/roomreview/{room.pk}/change/")

    # then the page shows the failure (no 500, no text), and it is on the record
    assert response.status_code == 200
    body = response.content.decode()
    assert "integrity failure" in body
    assert "tampered with" not in body
    assert len(viewed_since(seq)) == 1
    assert AuditEvent.objects.filter(seq__gt=seq, action="key.integrity.failed").exists()
    assert message.pk in (viewed_since(seq)[0].extra["first_id"],)


def test_the_admin_page_shows_the_decrypted_texts_and_records_one_event() -> None:
    room, _alice, officer, _msgs = a_room_with_history()
    seq = last_seq()

    response = client_for(officer).get(f"/admin/compliance/roomreview/{room.pk}/change/")

    assert response.status_code == 200
    body = response.content.decode()
    for text in ("first words", "second thoughts", "after rotation", "doomed text"):
        assert text in body
    assert "purged by retention run" in body
    assert "no-store" in response["Cache-Control"]
    (event,) = viewed_since(seq)
    assert (event.target_type, event.target_id) == ("rooms.room", str(room.pk))


def test_the_custodian_page_names_the_person_in_the_log() -> None:
    alice = make_user()
    room = make_room(members=(alice,))
    message_post(sender=alice, room=room, text="hers")
    seq = last_seq()

    response = client_for(make_officer()).get(
        f"/admin/compliance/custodianreview/{alice.pk}/change/"
    )

    assert response.status_code == 200
    assert "hers" in response.content.decode()
    (event,) = viewed_since(seq)
    assert (event.target_type, event.target_id) == ("accounts.user", str(alice.pk))


@pytest.mark.parametrize("query", ["after=x", "limit=0", "limit=101", "show=all", "after=-1"])
def test_a_bad_cursor_is_a_400_and_nothing_is_shown(query: str) -> None:
    room = make_room()
    seq = last_seq()

    response = client_for(make_officer()).get(
        f"/admin/compliance/roomreview/{room.pk}/change/?{query}"
    )

    assert response.status_code == 400
    assert viewed_since(seq) == []


@pytest.mark.parametrize("role", [None, Role.ROOM_ADMIN, Role.SECURITY_ADMIN])
def test_anyone_but_an_officer_is_refused_and_nothing_is_shown(role: Role | None) -> None:
    # given a member of the room (a room admin, or a security admin)
    person = make_user()
    if role is not None:
        grant_role(person, role)
    person = User.objects.get(pk=person.pk)
    room = make_room(members=(person,))
    message_post(sender=person, room=room, text="private words")
    seq = last_seq()

    # when they ask for the room's or their own custodian review
    client = client_for(person)
    pages = [
        client.get(f"/admin/compliance/roomreview/{room.pk}/change/"),
        client.get(f"/admin/compliance/custodianreview/{person.pk}/change/"),
        client.get("/admin/compliance/roomreview/"),
    ]

    # then refused, and nothing was read through the compliance key
    assert all(page.status_code in (302, 403, 404) for page in pages), [
        p.status_code for p in pages
    ]
    assert all(
        "/change/" not in page.get("Location", "") or "login" in page["Location"] for page in pages
    )
    assert all(b"private words" not in page.content for page in pages)
    assert viewed_since(seq) == []
    assert not AuditEvent.objects.filter(seq__gt=seq, action="key.compliance.used").exists()
    with pytest.raises(PermissionDenied, match="compliance officer"):
        content_review_room(officer=person, room=room)
    assert viewed_since(seq) == []


def test_an_officer_still_cannot_post() -> None:
    officer = make_officer()
    room = make_room()

    with pytest.raises(PermissionDenied):
        message_post(sender=officer, room=room, text="officer speaking")

    assert not Message.objects.filter(room=room, sender=officer).exists()


def test_the_review_reads_across_a_rotated_master_key(master_key_file: Path) -> None:
    # given history written under master-key version 1, then the master key rotated
    room, _alice, officer, msgs = a_room_with_history()
    key_file_add_version(master_key_file)
    reset_provider()
    clear_key_caches()
    master_key_rotate()
    assert ComplianceKeyPair.objects.filter(active=True).count() == 1
    clear_key_caches()

    # when the officer reviews the room
    page = content_review_room(officer=officer, room=room)

    # then every text still opens through the re-wrapped compliance key
    texts = [t.text for item in page.items if isinstance(item, ReviewMessage) for t in item.texts]
    assert texts == ["first words", "second thoughts", "after rotation", "doomed text"]
    assert msgs["aged"].pk in [item.id for item in page.items]
