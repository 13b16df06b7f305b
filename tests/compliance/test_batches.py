"""How a purge walks a room: windows of candidates in sent-time order (held and young ones
passed over, never purged, and rechecked under the lock), paced batches, tombstones
stamped per batch, and a requested run that stops once its requester loses the right."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from accounts.services import role_revoke, user_deactivate
from audit.models import AuditEvent
from compliance.models import BlobPurge, MessageTombstone, RetentionRun
from compliance.selectors import tombstones_verify
from compliance.services import (
    RetentionRightWithdrawnError,
    legal_hold_place,
    retention_apply,
    retention_policy_set,
)
from compliance.services import retention as retention_module
from compliance.services.retention import Pacer
from compliance.tasks import apply_retention_task
from files.models import StoredFile
from rooms.models import Message, Room
from rooms.services import message_edit
from safechat.environment import RetentionPacing, retention_pacing
from tests.accounts.factories import grant_role, make_user
from tests.compliance.factories import make_officer, post_aged
from tests.files.helpers import upload
from tests.rooms.factories import make_room
from tests.support.fixtures import PROJECT_ROOT, project_env

pytestmark = pytest.mark.django_db


def dated(message: Message, *, days: float) -> Message:
    sent = timezone.now() - timedelta(days=days)
    Message.objects.filter(pk=message.pk).update(created_at=sent)
    return Message.objects.get(pk=message.pk)


def purged_batches() -> list[int]:
    """Messages per ``retention.purged`` event, in order."""
    events = AuditEvent.objects.filter(action="retention.purged").order_by("seq")
    return [event.extra["messages"] for event in events if event.extra["messages"]]


def left_in(room: Room) -> set[int]:
    return set(Message.objects.filter(room=room).values_list("pk", flat=True))


# --- windows ----------------------------------------------------------------------


def test_messages_sent_at_one_instant_are_each_purged_once_across_windows() -> None:
    # given seven expired messages sent at the very same instant, and a young one
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    same = [post_aged(sender=owner, room=room, days=1) for _ in range(7)]
    Message.objects.filter(pk__in=[m.pk for m in same]).update(
        created_at=timezone.now() - timedelta(days=90)
    )
    young = post_aged(sender=owner, room=room, days=1)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when a run reads them two at a time
    report = retention_apply(batch_size=2)

    # then the windows continued after (instant, id): every one went, once
    assert left_in(room) == {young.pk}
    assert set(MessageTombstone.objects.values_list("message_id", flat=True)) == {
        m.pk for m in same
    }
    assert purged_batches() == [2, 2, 2, 1]
    assert report.totals()["messages"] == 7


def test_windows_follow_sent_time_and_each_batch_s_tombstones_verify_by_its_instant() -> None:
    # given expired messages whose sent times run against their ids
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    posted = [post_aged(sender=owner, room=room, days=1) for _ in range(4)]
    for message, days in zip(posted, (50, 90, 60, 80), strict=True):
        dated(message, days=days)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when a run purges them two at a time
    run_id = retention_apply(batch_size=2).run_id

    # then the oldest two went first, their tombstones share their batch's instant, and
    # the run verifies although each batch's ids are not a range of their own
    first, second = (
        {t.message_id for t in MessageTombstone.objects.filter(purged_at=instant)}
        for instant in sorted(set(MessageTombstone.objects.values_list("purged_at", flat=True)))
    )
    assert first == {posted[1].pk, posted[3].pk}
    assert second == {posted[0].pk, posted[2].pk}
    stamps = [e.extra["purged_at"] for e in AuditEvent.objects.filter(action="retention.purged")]
    assert len(set(stamps)) == 2
    assert tombstones_verify(run_id=run_id) == []


def test_a_tombstone_moved_to_another_batch_s_instant_is_named() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    posted = [post_aged(sender=owner, room=room, days=90 - i) for i in range(4)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    run_id = retention_apply(batch_size=2).run_id
    later = MessageTombstone.objects.get(message_id=posted[3].pk).purged_at

    MessageTombstone.objects.filter(message_id=posted[0].pk).update(purged_at=later)

    problems = tombstones_verify(run_id=run_id)
    assert len(problems) == 2
    assert all("do not match" in problem for problem in problems)


def test_held_and_recently_edited_messages_in_a_window_stay_and_the_walk_goes_past_them() -> None:
    # given, in sent order: held, expired, edited lately, expired, held, expired
    officer, owner, custodian = make_officer(), make_user(), make_user()
    room = make_room(owner=owner, members=(custodian,))
    senders = [custodian, owner, owner, owner, custodian, owner]
    posted = [post_aged(sender=sender, room=room, days=90 - i) for i, sender in enumerate(senders)]
    edited = posted[2]
    message_edit(actor=owner, message=edited, text="said again")
    dated(edited, days=88)  # sent long ago, its last write now
    legal_hold_place(actor=officer, matter="M", reason="r", custodians=[custodian])
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when a run reads them two at a time
    report = retention_apply(batch_size=2)

    # then exactly the three expired, unheld ones went; the walk did not stop at a
    # window that purged one of two, nor at one the hold kept whole
    assert left_in(room) == {posted[0].pk, edited.pk, posted[4].pk}
    assert report.totals()["messages"] == 3
    assert purged_batches() == [1, 1, 1]


def test_a_message_edited_after_its_window_was_read_is_rechecked_under_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given three expired messages, one of them edited (so young again) right after the
    # batch read its window and before it locked the rows
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    posted = [post_aged(sender=owner, room=room, days=90 - i) for i in range(3)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    original = retention_module._window
    edits: list[Message] = []

    def window_then_edit(**kwargs: Any) -> Any:
        rows = original(**kwargs)
        if rows and not edits:
            edits.append(message_edit(actor=owner, message=posted[1], text="fresh"))
        return rows

    monkeypatch.setattr(retention_module, "_window", window_then_edit)

    # when the run purges
    retention_apply(batch_size=10)

    # then the edited one stays, with its earlier text; the others went
    assert left_in(room) == {posted[1].pk}
    assert Message.objects.get(pk=posted[1].pk).revision == 1
    assert not MessageTombstone.objects.filter(message_id=posted[1].pk).exists()


def test_a_hold_placed_after_a_window_was_read_is_rechecked_under_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    posted = [post_aged(sender=owner, room=room, days=90) for _ in range(3)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    original = retention_module._window

    def window_then_hold(**kwargs: Any) -> Any:
        rows = original(**kwargs)
        if rows and not MessageTombstone.objects.exists():
            legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])
        return rows

    monkeypatch.setattr(retention_module, "_window", window_then_hold)

    report = retention_apply(batch_size=10)

    assert left_in(room) == {m.pk for m in posted}
    assert report.totals()["messages"] == 0
    assert not AuditEvent.objects.filter(action="retention.purged").exists()


# --- a requested run and its requester's right --------------------------------------


def test_a_requested_run_stops_before_the_next_batch_once_its_requester_loses_the_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an officer's run over five expired messages, two per batch, and a security
    # admin who takes the officer's role away once the first batch has committed
    officer, owner = make_officer(), make_user()
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    room = make_room(owner=owner)
    for i in range(5):
        post_aged(sender=owner, room=room, days=90 - i)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    committed = []

    def revoke_after_the_first(run: RetentionRun) -> None:
        committed.append(run.pk)
        if len(committed) == 1:
            role_revoke(
                actor=User.objects.get(pk=admin.pk), user=officer, role=Role.COMPLIANCE_OFFICER
            )

    monkeypatch.setattr(retention_module, "_batch_committed", revoke_after_the_first)

    # when the run goes on
    with pytest.raises(RetentionRightWithdrawnError):
        retention_apply(actor=officer, batch_size=2)

    # then it stopped there: the first batch stands, whole, and nothing after it
    assert Message.objects.filter(room=room).count() == 3
    assert MessageTombstone.objects.count() == 2
    assert purged_batches() == [2]
    run = RetentionRun.objects.get()
    assert (run.state, run.messages, run.lease_expires_at) == ("refused", 2, None)
    assert run.finished_at is not None
    assert tombstones_verify(run_id=run.pk) == []
    # the refusal is on the record once, as the officer's, with what the run did
    refusal = AuditEvent.objects.get(action="retention.run.refused")
    assert refusal.actor_id == officer.pk
    assert refusal.extra["reason"] == "right withdrawn"
    assert (refusal.extra["run"], refusal.extra["messages"]) == (run.pk, 2)
    assert not AuditEvent.objects.filter(
        action__in=["retention.run.finished", "retention.run.failed"]
    ).exists()
    assert committed == [run.pk]

    # and the next run completes the work
    monkeypatch.undo()
    assert retention_apply().totals()["messages"] == 3
    assert not Message.objects.filter(room=room).exists()


def test_a_queued_run_whose_requester_is_deactivated_mid_run_stops_and_stands_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a run the worker starts for an officer, who is deactivated after its first
    # batch (the shred of an emptied epoch is a batch too)
    officer, owner = make_officer(), make_user()
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    room, other = make_room(owner=owner), make_room(owner=owner)
    post_aged(sender=owner, room=room, days=90)
    kept = post_aged(sender=owner, room=other, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    deactivated: list[int] = []

    def deactivate_once(run: RetentionRun) -> None:
        if not deactivated:
            user_deactivate(actor=User.objects.get(pk=admin.pk), user=officer)
            deactivated.append(run.pk)

    monkeypatch.setattr(retention_module, "_batch_committed", deactivate_once)

    # when the worker runs it
    run_id = apply_retention_task(requested_by=officer.pk)

    # then it stood down after that batch: the other room's message is still there
    assert run_id == 0
    assert Message.objects.filter(pk=kept.pk).exists()
    assert MessageTombstone.objects.count() == 1
    assert RetentionRun.objects.get().state == "refused"
    assert AuditEvent.objects.get(action="retention.run.refused").extra["reason"] == (
        "right withdrawn"
    )
    assert not BlobPurge.objects.exists()


# --- pacing -----------------------------------------------------------------------


def test_pacing_settings_are_read_from_their_text() -> None:
    assert retention_pacing(batch=" 500 ", batch_seconds="0.05", pause_ratio="1") == (
        RetentionPacing(batch=500, batch_seconds=0.05, pause_ratio=1.0)
    )
    assert retention_pacing(batch="1", batch_seconds="60", pause_ratio="0").pause_ratio == 0


@pytest.mark.parametrize(
    ("batch", "seconds", "ratio", "named"),
    [
        ("0", "0.05", "1", "SAFECHAT_RETENTION_BATCH must be between 1 and 100000"),
        ("100001", "0.05", "1", "SAFECHAT_RETENTION_BATCH must be between"),
        ("many", "0.05", "1", "SAFECHAT_RETENTION_BATCH must be a whole number"),
        ("500", "0", "1", "SAFECHAT_RETENTION_BATCH_SECONDS must be between 0.001 and 60"),
        ("500", "61", "1", "SAFECHAT_RETENTION_BATCH_SECONDS must be between"),
        ("500", "nan", "1", "SAFECHAT_RETENTION_BATCH_SECONDS must be a finite number"),
        ("500", "0.05", "-1", "SAFECHAT_RETENTION_PAUSE_RATIO must be between 0 and 100"),
        ("500", "0.05", "inf", "SAFECHAT_RETENTION_PAUSE_RATIO must be a finite number"),
        ("500", "0.05", "lots", "SAFECHAT_RETENTION_PAUSE_RATIO must be a number"),
    ],
)
def test_a_pacing_setting_out_of_range_is_refused_by_name(
    batch: str, seconds: str, ratio: str, named: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        retention_pacing(batch=batch, batch_seconds=seconds, pause_ratio=ratio)


def test_a_pacing_setting_out_of_range_refuses_to_start_on_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**project_env(tmp_path), "SAFECHAT_RETENTION_PAUSE_RATIO": "-1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SafeChat refuses to start: SAFECHAT_RETENTION_PAUSE_RATIO" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_batch_grows_while_quick_and_shrinks_when_slow_within_its_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rests: list[float] = []
    monkeypatch.setattr(retention_module, "_rest", rests.append)
    pacer = Pacer(ceiling=500, target=0.05, ratio=1.5)
    assert (pacer.floor, pacer.size) == (10, 100)

    pacer.measured(elapsed=0.01, rows=100)  # five times quicker than aimed: at most 2x
    assert pacer.size == 200
    pacer.measured(elapsed=0.04, rows=200)
    assert pacer.size == 250
    pacer.measured(elapsed=0.01, rows=250)
    pacer.measured(elapsed=0.01, rows=500)
    assert pacer.size == 500  # the ceiling
    pacer.measured(elapsed=0.001, rows=30)  # a short window says nothing about more
    assert pacer.size == 500
    pacer.measured(elapsed=1.0, rows=500)  # twenty times too slow: at most halved
    assert pacer.size == 250
    for _ in range(10):
        pacer.measured(elapsed=1.0, rows=pacer.size)
    assert pacer.size == 10  # the floor
    pacer.measured(elapsed=0.5, rows=0)  # nothing measured: the size stays
    assert pacer.size == 10
    assert rests[:2] == [pytest.approx(0.015), pytest.approx(0.06)]
    assert rests[-1] == pytest.approx(0.75)


def test_a_small_batch_size_is_its_own_floor() -> None:
    pacer = Pacer(ceiling=3, target=0.05, ratio=1.0)
    assert (pacer.floor, pacer.size) == (3, 3)


def test_a_run_sizes_its_batches_by_their_duration_and_rests_after_each(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given batches that cannot last as little as aimed, and a rest twice their length
    settings.SAFECHAT_RETENTION_BATCH_SECONDS = 1e-6
    settings.SAFECHAT_RETENTION_PAUSE_RATIO = 2.0
    rests: list[float] = []
    monkeypatch.setattr(retention_module, "_rest", rests.append)
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    first = post_aged(sender=owner, room=room, days=1)
    Message.objects.bulk_create(
        [
            Message(room=room, sender=owner, seq=first.seq + n, epoch=first.epoch,
                    ciphertext=first.ciphertext)
            for n in range(1, 120)
        ]
    )  # fmt: skip
    Message.objects.filter(room=room).update(created_at=timezone.now() - timedelta(days=90))
    retention_policy_set(actor=officer, room=None, keep_days=30)

    # when a run purges them, at most 50 a batch
    retention_apply(batch_size=50)

    # then each batch was at most half the one before, down to ten; after each batch and
    # the epoch's shred the job rested
    assert purged_batches() == [50, 25, 12, 10, 10, 10, 3]
    assert len(rests) == 8
    assert all(rest > 0 for rest in rests)


def test_without_a_rest_ratio_the_job_never_sleeps(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SAFECHAT_RETENTION_PAUSE_RATIO = 0.0
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    for _ in range(3):
        post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)

    assert retention_apply(batch_size=2).totals()["messages"] == 3
    assert slept == []


# --- a policy changed while a run works ---------------------------------------------


@pytest.mark.parametrize("longer", [400, None], ids=["lengthened", "forever"])
def test_a_policy_lengthened_during_a_run_stops_the_purge_of_what_it_now_keeps(
    monkeypatch: pytest.MonkeyPatch, longer: int | None
) -> None:
    # given messages 90 days old under a 30-day policy, and the policy lengthened (to 400
    # days, or forever) right after the run read its first window
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    posted = [post_aged(sender=owner, room=room, days=90) for _ in range(3)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    original = retention_module._window

    def window_then_lengthen(**kwargs: Any) -> Any:
        rows = original(**kwargs)
        if rows and not MessageTombstone.objects.exists():
            retention_policy_set(actor=officer, room=room, keep_days=longer)
        return rows

    monkeypatch.setattr(retention_module, "_window", window_then_lengthen)

    # when the run purges
    report = retention_apply(batch_size=10)

    # then nothing went: the policy in force when the batch ran keeps them
    assert left_in(room) == {m.pk for m in posted}
    assert report.totals()["messages"] == 0
    assert not MessageTombstone.objects.exists()
    assert not AuditEvent.objects.filter(action="retention.purged").exists()


def test_a_policy_lengthened_during_a_run_keeps_loose_files_it_now_covers(
    monkeypatch: pytest.MonkeyPatch, vault_dir: Path
) -> None:
    # given a loose file 90 days old under a 30-day policy, lengthened to forever once the
    # run looked whether loose files expire
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    loose = upload(actor=owner, room=room, data=b"x" * 2000, name="pending.dat")
    StoredFile.objects.filter(pk=loose.pk).update(created_at=timezone.now() - timedelta(days=90))
    original = retention_module._loose_files_expire

    def look_then_lengthen(room_id: int, cutoff: Any) -> bool:
        found = original(room_id, cutoff)
        retention_policy_set(actor=officer, room=None, keep_days=None)
        return found

    monkeypatch.setattr(retention_module, "_loose_files_expire", look_then_lengthen)

    # when the run purges
    report = retention_apply(batch_size=10)

    # then the file stays
    assert StoredFile.objects.filter(pk=loose.pk).exists()
    assert report.totals()["files"] == 0
    assert not BlobPurge.objects.exists()
