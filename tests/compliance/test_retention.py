"""The retention job: exactly what expired and is not held goes, with its revisions,
reactions, mentions and files; tombstones stay; emptied epochs are shredded unless held."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.http import Http404
from django.utils import timezone
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from compliance.locks import RUN_LOCK_KEY
from compliance.models import BlobPurge, MessageTombstone, RetentionRun
from compliance.selectors import message_fate, tombstones_verify
from compliance.services import (
    ComplianceRefused,
    legal_hold_place,
    legal_hold_release,
    retention_apply,
    retention_policy_set,
)
from compliance.services import retention as retention_module
from files.models import StoredFile
from rooms.holds import room_legal_hold
from rooms.models import Membership, Mention, Message, MessageRevision, Reaction, Room
from rooms.selectors import message_view
from rooms.services import (
    barrier_create,
    direct_conversation_create,
    group_create,
    group_members_set,
    membership_remove,
    message_delete,
    message_edit,
    reaction_toggle,
)
from safechat.keyring.errors import KeyUnavailableError
from safechat.keyring.models import RoomEpoch, SealedEpochKey
from safechat.keyring.services import clear_key_caches, room_epoch_key_for
from tests.accounts.factories import grant_role, make_user
from tests.compliance.factories import make_officer, post_aged
from tests.files.helpers import upload, upload_and_scan
from tests.rooms.factories import make_room
from tests.support.clamd import OwnClamd

pytestmark = pytest.mark.django_db


def age(message: Message, days: float) -> None:
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=days))


def text_for(reader: User, message: Message) -> str | None:
    return message_view(reader=reader, message=Message.objects.get(pk=message.pk)).text


def blobs_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_expired_messages_go_with_their_revisions_reactions_and_mentions() -> None:
    officer, owner, member = make_officer(), make_user(), make_user(username="mia")
    room = make_room(owner=owner, members=(member,))
    old = post_aged(sender=owner, room=room, days=1, text="first @mia")
    message_edit(actor=owner, message=old, text="edited @mia")
    reaction_toggle(actor=member, message=old, emoji="👍")
    Message.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=40),
        edited_at=timezone.now() - timedelta(days=39),
    )
    young = post_aged(sender=owner, room=room, days=10)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    assert Mention.objects.filter(message=old).exists()

    report = retention_apply()

    assert list(Message.objects.filter(room=room).values_list("pk", flat=True)) == [young.pk]
    assert not MessageRevision.objects.filter(message_id=old.pk).exists()
    assert not Reaction.objects.filter(message_id=old.pk).exists()
    assert not Mention.objects.filter(message_id=old.pk).exists()
    tombstone = MessageTombstone.objects.get(message_id=old.pk)
    assert (tombstone.room_id, tombstone.seq, tombstone.run_id) == (room.pk, old.seq, report.run_id)
    assert message_fate(room_id=room.pk, message_id=old.pk).state == "purged"
    assert message_fate(room_id=room.pk, message_id=young.pk).state == "present"
    assert message_fate(room_id=room.pk, message_id=young.pk + 99).state == "never existed"
    run = RetentionRun.objects.get(pk=report.run_id)
    assert (run.state, run.messages, run.revisions, run.reactions, run.mentions) == (
        "finished", 1, 1, 1, 1,
    )  # fmt: skip
    [purged] = AuditEvent.objects.filter(action="retention.purged")
    assert purged.extra["messages"] == 1
    finished = AuditEvent.objects.get(action="retention.run.finished")
    assert finished.extra["messages"] == 1
    assert report.totals()["messages"] == 1


def test_an_edit_restarts_a_message_s_age() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=1)
    message_edit(actor=owner, message=message, text="new words")
    age(message, 90)  # sent long ago, edited just now
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    assert Message.objects.filter(pk=message.pk).exists()
    assert MessageRevision.objects.filter(message=message).count() == 1


def test_a_room_kept_forever_or_without_a_policy_loses_nothing() -> None:
    officer, owner = make_officer(), make_user()
    kept_forever, other = make_room(owner=owner), make_room(owner=owner)
    a = post_aged(sender=owner, room=kept_forever, days=999)
    b = post_aged(sender=owner, room=other, days=999)

    retention_apply()  # no policy at all: everything is kept
    assert Message.objects.filter(pk__in=[a.pk, b.pk]).count() == 2

    retention_policy_set(actor=officer, room=None, keep_days=30)
    retention_policy_set(actor=officer, room=kept_forever, keep_days=None)
    retention_apply()

    assert Message.objects.filter(pk=a.pk).exists()
    assert not Message.objects.filter(pk=b.pk).exists()


def test_a_room_hold_keeps_everything_and_a_range_only_what_it_spans() -> None:
    officer, owner = make_officer(), make_user()
    held_room, ranged_room = make_room(owner=owner), make_room(owner=owner)
    kept = post_aged(sender=owner, room=held_room, days=100)
    in_range = post_aged(sender=owner, room=ranged_room, days=100)
    outside = post_aged(sender=owner, room=ranged_room, days=200)
    day = (timezone.now() - timedelta(days=100)).date()
    legal_hold_place(actor=officer, matter="M1", reason="r", rooms=[held_room])
    legal_hold_place(
        actor=officer,
        matter="M2",
        reason="r",
        rooms=[ranged_room],
        starts_on=day - timedelta(days=1),
        ends_on=day + timedelta(days=1),
    )
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    assert Message.objects.filter(pk__in=[kept.pk, in_range.pk]).count() == 2
    assert not Message.objects.filter(pk=outside.pk).exists()


def test_a_custodian_hold_protects_their_messages_in_every_room_and_their_direct_talks() -> None:
    officer, custodian, colleague = make_officer(), make_user(), make_user()
    channel = make_room(owner=colleague, members=(custodian,))
    other_channel = make_room(owner=custodian)
    direct = direct_conversation_create(actor=colleague, participants=[custodian])
    theirs = post_aged(sender=custodian, room=channel, days=100)
    also_theirs = post_aged(sender=custodian, room=other_channel, days=100)
    in_direct = post_aged(sender=colleague, room=direct, days=100)
    colleague_s = post_aged(sender=colleague, room=channel, days=100)
    legal_hold_place(actor=officer, matter="M", reason="r", custodians=[custodian])
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    assert Message.objects.filter(pk__in=[theirs.pk, also_theirs.pk, in_direct.pk]).count() == 3
    assert not Message.objects.filter(pk=colleague_s.pk).exists()
    clear_key_caches()
    assert text_for(custodian, theirs) == "hello"


def test_a_custodian_removed_from_a_direct_conversation_still_holds_all_of_it() -> None:
    # given a custodian's direct conversation, in which only the other side wrote, and a
    # barrier that a security admin resolved by removing the custodian from it
    officer, custodian, colleague = make_officer(), make_user(), make_user()
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    direct = direct_conversation_create(actor=colleague, participants=[custodian])
    theirs = post_aged(sender=colleague, room=direct, days=100)
    deals, research = (
        group_create(actor=admin, name="deals"),
        group_create(actor=admin, name="research"),
    )
    group_members_set(actor=admin, group=deals, add=[custodian])
    group_members_set(actor=admin, group=research, add=[colleague])
    barrier_create(actor=admin, group_a=deals, group_b=research)
    membership_remove(actor=admin, room=direct, member=custodian)
    assert not Membership.objects.filter(room=direct, user=custodian).exists()
    legal_hold_place(actor=officer, matter="M", reason="r", custodians=[custodian])
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when retention runs
    report = retention_apply()

    # then the conversation is still theirs under the hold: the other side's message stays
    assert room_legal_hold(direct.pk) is True
    assert Message.objects.filter(pk=theirs.pk).exists()
    assert report.totals()["messages"] == 0
    assert RoomEpoch.objects.filter(room=direct, shredded_at__isnull=False).count() == 0


def test_a_released_hold_lets_the_next_run_purge() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=100)
    hold = legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])
    retention_policy_set(actor=officer, room=None, keep_days=30)
    retention_apply()
    assert Message.objects.filter(pk=message.pk).exists()

    legal_hold_release(actor=officer, hold=hold, reason="settled")
    retention_apply()

    assert not Message.objects.filter(pk=message.pk).exists()


def test_edits_and_deletions_of_held_content_keep_the_originals() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=1, text="original")
    legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])
    message_edit(actor=owner, message=message, text="changed")
    message_delete(actor=owner, message=Message.objects.get(pk=message.pk))
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(days=90),
        edited_at=timezone.now() - timedelta(days=90),
    )
    MessageRevision.objects.filter(message=message).update(
        created_at=timezone.now() - timedelta(days=90)
    )
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    kept = Message.objects.get(pk=message.pk)
    assert kept.deleted_at is not None
    [revision] = MessageRevision.objects.filter(message=message)
    assert revision.revision == 0
    assert revision.ciphertext


def test_an_epoch_whose_content_all_expired_is_shredded_and_unreadable() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    old = post_aged(sender=owner, room=room, days=100)
    RoomEpoch.objects.filter(room=room).update(created_at=timezone.now() - timedelta(days=101))
    from rooms.services import room_key_rotate

    room_key_rotate(actor=owner, room=room)
    young = post_aged(sender=owner, room=room, days=1)
    assert young.epoch == old.epoch + 1
    retention_policy_set(actor=officer, room=None, keep_days=30)

    report = retention_apply()

    old_epoch = RoomEpoch.objects.get(room=room, number=old.epoch)
    assert old_epoch.shredded_at is not None
    assert not SealedEpochKey.objects.filter(epoch=old_epoch).exists()
    clear_key_caches()
    with pytest.raises(KeyUnavailableError):
        room_epoch_key_for(room_id=room.pk, number=old.epoch, user_id=owner.pk)
    assert RoomEpoch.objects.get(room=room, number=young.epoch).shredded_at is None
    assert report.totals()["epochs"] == 1
    assert AuditEvent.objects.filter(action="key.epoch.shredded").count() == 1
    clear_key_caches()
    assert text_for(owner, young) == "hello"


def test_a_held_epoch_is_not_shredded_even_when_nothing_is_left_to_purge() -> None:
    officer, owner, custodian = make_officer(), make_user(), make_user()
    room = make_room(owner=owner, members=(custodian,))
    theirs = post_aged(sender=custodian, room=room, days=100)
    post_aged(sender=owner, room=room, days=100)
    legal_hold_place(actor=officer, matter="M", reason="r", custodians=[custodian])
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    epoch = RoomEpoch.objects.get(room=room, number=theirs.epoch)
    assert epoch.shredded_at is None
    clear_key_caches()
    assert text_for(owner, theirs) == "hello"


def test_a_dry_run_reports_per_room_and_changes_nothing() -> None:
    officer, owner = make_officer(), make_user()
    room, quiet = make_room(owner=owner), make_room(owner=owner)
    oldest = post_aged(sender=owner, room=room, days=90)
    newest = post_aged(sender=owner, room=room, days=40)
    post_aged(sender=owner, room=room, days=5)
    post_aged(sender=owner, room=quiet, days=5)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    before = Message.objects.count()

    report = retention_apply(dry_run=True)

    assert Message.objects.count() == before
    assert not MessageTombstone.objects.exists()
    [counts] = report.rooms
    assert (counts.room_id, counts.messages, counts.epochs) == (room.pk, 2, 0)
    assert counts.oldest == Message.objects.get(pk=oldest.pk).created_at
    assert counts.newest == Message.objects.get(pk=newest.pk).created_at
    dry = AuditEvent.objects.get(action="retention.dry_run")
    assert dry.extra["messages"] == 2
    assert not AuditEvent.objects.filter(action="retention.purged").exists()


def test_a_dry_run_for_a_room_that_does_not_exist_is_refused_and_audited() -> None:
    retention_policy_set(actor=make_officer(), room=None, keep_days=30)

    with pytest.raises(ComplianceRefused, match="there is no room 999999"):
        retention_apply(dry_run=True, room_id=999999)

    assert not RetentionRun.objects.exists()
    refusal = AuditEvent.objects.get(action="retention.run.refused")
    assert refusal.extra["reason"] == "no such room"


@pytest.mark.parametrize("batch_size", [-5, 0.5, True])
def test_a_run_asked_for_batches_of_no_whole_positive_size_is_refused_and_audited(
    batch_size: object,
) -> None:
    # given an expired message under a policy
    owner = make_user()
    room = make_room(owner=owner)
    old = post_aged(sender=owner, room=room, days=100)
    retention_policy_set(actor=make_officer(), room=None, keep_days=30)

    # when a run is asked for with a batch size that is no whole number of at least one
    with pytest.raises(ComplianceRefused, match="a batch size is a whole number of at least 1"):
        retention_apply(batch_size=batch_size)  # type: ignore[arg-type]

    # then no run started, nothing was purged, and the attempt is audited
    assert not RetentionRun.objects.exists()
    assert Message.objects.filter(pk=old.pk).exists()
    refusal = AuditEvent.objects.get(action="retention.run.refused")
    assert refusal.extra["reason"] == "bad batch size"


def test_a_run_limited_to_one_room_leaves_the_others() -> None:
    officer, owner = make_officer(), make_user()
    room, other = make_room(owner=owner), make_room(owner=owner)
    a = post_aged(sender=owner, room=room, days=90)
    b = post_aged(sender=owner, room=other, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply(room_id=room.pk)

    assert not Message.objects.filter(pk=a.pk).exists()
    assert Message.objects.filter(pk=b.pk).exists()


def test_a_second_run_while_one_works_is_refused_and_changes_nothing() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    alive = RetentionRun.objects.create(
        started_at=timezone.now(), lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    other = connections.create_connection("default")
    if other.vendor == "postgresql":  # the working run's session holds the run lock
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [RUN_LOCK_KEY])

    try:
        with pytest.raises(ComplianceRefused, match="another retention run is working"):
            retention_apply()
    finally:
        other.close()

    assert Message.objects.filter(pk=message.pk).exists()
    assert RetentionRun.objects.get(pk=alive.pk).state == "running"
    assert AuditEvent.objects.get(action="retention.run.refused").extra["reason"] == (
        "another run is working"
    )


def test_a_run_found_dead_is_taken_over_and_its_work_completed() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    dead = RetentionRun.objects.create(
        started_at=timezone.now() - timedelta(hours=2),
        lease_expires_at=timezone.now() - timedelta(hours=1),
    )
    BlobPurge.objects.create(prefix="left-behind", run=dead)

    report = retention_apply()

    assert report.resumed == [dead.pk]
    assert RetentionRun.objects.get(pk=dead.pk).state == "interrupted"
    assert not Message.objects.filter(pk=message.pk).exists()
    assert not BlobPurge.objects.exists()
    assert AuditEvent.objects.filter(action="retention.run.interrupted").count() == 1


def test_a_run_killed_between_batches_leaves_a_state_the_next_run_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer, owner, member = make_officer(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    doomed = [post_aged(sender=owner, room=room, days=90) for _ in range(7)]
    for message in doomed:
        reaction_toggle(actor=member, message=message, emoji="👍")
    young = post_aged(sender=owner, room=room, days=1)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    batches = 0

    def crash(run: RetentionRun) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(retention_module, "_batch_committed", crash)
    with pytest.raises(KeyboardInterrupt):
        retention_apply(batch_size=3)

    # two whole batches committed, nothing half-done
    gone = [m.pk for m in doomed if not Message.objects.filter(pk=m.pk).exists()]
    assert len(gone) == 6
    assert MessageTombstone.objects.count() == 6
    assert not Reaction.objects.filter(message_id__in=gone).exists()
    failed = RetentionRun.objects.get()
    assert (failed.state, failed.messages, failed.reactions) == ("failed", 6, 6)
    assert AuditEvent.objects.filter(action="retention.run.failed").count() == 1

    monkeypatch.undo()
    report = retention_apply(batch_size=3)

    assert list(Message.objects.filter(room=room).values_list("pk", flat=True)) == [young.pk]
    assert MessageTombstone.objects.count() == 7
    assert report.totals()["messages"] == 1


def test_files_go_with_their_message_and_loose_files_on_their_own(
    clamd: OwnClamd, vault_dir: Path
) -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    shared = upload_and_scan(actor=owner, room=room, data=b"statement " * 300)
    assert shared.message_id is not None
    loose = upload(actor=owner, room=room, data=b"x" * 2000, name="pending.dat")
    assert loose.state == StoredFile.State.PENDING_SCAN
    long_ago = timezone.now() - timedelta(days=90)
    Message.objects.filter(pk=shared.message_id).update(created_at=long_ago)
    StoredFile.objects.filter(pk__in=[shared.pk, loose.pk]).update(created_at=long_ago)
    assert blobs_in(vault_dir)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    report = retention_apply()

    assert not StoredFile.objects.filter(pk__in=[shared.pk, loose.pk]).exists()
    assert not Message.objects.filter(pk=shared.message_id).exists()
    assert blobs_in(vault_dir) == []
    assert not BlobPurge.objects.exists()
    assert report.totals()["files"] == 2
    epoch = RoomEpoch.objects.get(room=room, number=shared.epoch)
    assert epoch.shredded_at is not None


def test_the_backup_check_warns_when_backups_outlive_the_shortest_policy(
    settings: Settings,
) -> None:
    settings.SAFECHAT_BACKUP_RETENTION_DAYS = 45
    officer = make_officer()
    retention_policy_set(actor=officer, room=None, keep_days=400)
    retention_policy_set(actor=officer, room=make_room(), keep_days=30)

    report = retention_apply()

    assert "45 days" in report.backup_warning
    warning = AuditEvent.objects.get(action="retention.backup.warning")
    assert warning.extra == {"backup_days": 45, "shortest_policy_days": 30}


def test_no_backup_warning_within_the_policy(settings: Settings) -> None:
    settings.SAFECHAT_BACKUP_RETENTION_DAYS = 30
    retention_policy_set(actor=make_officer(), room=None, keep_days=30)

    assert retention_apply().backup_warning == ""
    assert not AuditEvent.objects.filter(action="retention.backup.warning").exists()


def test_a_reply_kept_loses_only_its_link_to_a_purged_parent() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    parent = post_aged(sender=owner, room=room, days=90)
    from rooms.services import message_post

    reply = message_post(sender=owner, room=room, text="re", parent_id=parent.pk)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    kept = Message.objects.get(pk=reply.pk)
    assert kept.parent_id is None
    assert MessageTombstone.objects.filter(message_id=parent.pk).exists()


def test_a_hold_range_in_the_past_does_not_protect_later_messages() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=60)
    legal_hold_place(
        actor=officer,
        matter="M",
        reason="r",
        rooms=[room],
        starts_on=date(2001, 1, 1),
        ends_on=date(2001, 12, 31),
    )
    retention_policy_set(actor=officer, room=None, keep_days=30)

    retention_apply()

    assert not Message.objects.filter(pk=message.pk).exists()
    assert Room.objects.filter(pk=room.pk).exists()


def test_a_run_s_tombstones_match_its_audit_events_and_a_forged_one_is_named() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    messages = [post_aged(sender=owner, room=room, days=90) for _ in range(5)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    run_id = retention_apply(batch_size=2).run_id
    assert tombstones_verify(run_id=run_id) == []

    MessageTombstone.objects.filter(message_id=messages[2].pk).delete()

    problems = tombstones_verify(run_id=run_id)
    assert len(problems) == 2
    assert "do not match" in problems[0]


def test_an_edit_or_deletion_of_a_message_purged_meanwhile_is_a_404_and_writes_nothing() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    stale = post_aged(sender=owner, room=room, days=90)
    stale.room = room
    retention_policy_set(actor=officer, room=None, keep_days=30)
    retention_apply()
    edits_before = AuditEvent.objects.filter(action="message.edited").count()

    with pytest.raises(Http404):
        message_edit(actor=owner, message=stale, text="too late")
    with pytest.raises(Http404):
        message_delete(actor=owner, message=stale)

    assert not MessageRevision.objects.filter(message_id=stale.pk).exists()
    assert AuditEvent.objects.filter(action="message.edited").count() == edits_before
    assert not AuditEvent.objects.filter(action="message.deleted").exists()


def test_a_hold_range_holds_its_first_and_last_instants_and_nothing_beside_them(
    settings: Settings,
) -> None:
    # given a project in New York time, and messages in a room at the edges of a held
    # range of UTC days: a microsecond before it, its first instant, its last, the next
    settings.TIME_ZONE = "America/New_York"
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    first_day = (timezone.now() - timedelta(days=200)).date()
    last_day = first_day + timedelta(days=9)
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)
    edges = {
        "before": start - timedelta(microseconds=1),
        "first": start,
        "last": end - timedelta(microseconds=1),
        "after": end,
    }
    posted = {}
    for name, instant in edges.items():
        message = post_aged(sender=owner, room=room, days=1)
        Message.objects.filter(pk=message.pk).update(created_at=instant)
        posted[name] = message.pk
    legal_hold_place(
        actor=officer, matter="M", reason="r", rooms=[room], starts_on=first_day, ends_on=last_day
    )
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when retention runs
    retention_apply()

    # then exactly the two inside the range stay
    left = set(Message.objects.filter(room=room).values_list("pk", flat=True))
    assert left == {posted["first"], posted["last"]}
