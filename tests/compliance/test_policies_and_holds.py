"""Policies and holds: set, placed and released through the services; every bad input
refused with a clear message, nothing changed, the attempt audited."""

from __future__ import annotations

from datetime import date

import pytest
from pytest_django import Settings

from audit.models import AuditEvent
from compliance.models import LegalHold, RetentionPolicy, RetentionRun
from compliance.services import (
    ComplianceRefused,
    legal_hold_place,
    legal_hold_release,
    retention_apply,
    retention_policy_set,
)
from rooms.holds import room_legal_hold
from rooms.models import Message
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer, post_aged
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_an_officer_sets_the_default_and_a_room_override() -> None:
    officer = make_officer()
    room = make_room()

    default = retention_policy_set(actor=officer, room=None, keep_days=400)
    override = retention_policy_set(actor=officer, room=room, keep_days=None)
    changed = retention_policy_set(actor=officer, room=None, keep_days=500)

    assert changed.pk == default.pk
    assert RetentionPolicy.objects.get(room=None).keep_days == 500
    assert RetentionPolicy.objects.get(room=room).keep_days is None
    assert override.room_id == room.pk
    recorded = events("retention.policy.set")
    assert [e.extra["keep_days"] for e in recorded] == [400, None, 500]
    assert recorded[2].extra["before"] == 400


def test_a_policy_below_the_organisation_minimum_is_refused_and_audited(
    settings: Settings,
) -> None:
    settings.SAFECHAT_RETENTION_MINIMUM_DAYS = 2190
    officer = make_officer()
    retention_policy_set(actor=officer, room=None, keep_days=3000)

    with pytest.raises(ComplianceRefused, match="at least 2190 days"):
        retention_policy_set(actor=officer, room=None, keep_days=2189)

    assert RetentionPolicy.objects.get(room=None).keep_days == 3000
    [refusal] = events("retention.policy.refused")
    assert refusal.extra["reason"] == "below the organisation minimum"
    assert refusal.extra["keep_days"] == 2189
    assert len(events("retention.policy.set")) == 1


def test_someone_without_the_permission_sets_no_policy() -> None:
    member = make_user()

    with pytest.raises(ComplianceRefused):
        retention_policy_set(actor=member, room=None, keep_days=3000)

    assert not RetentionPolicy.objects.exists()
    assert events("retention.policy.refused")[0].extra["reason"] == "not allowed"


def test_a_hold_is_placed_on_rooms_and_custodians_and_released_with_a_reason() -> None:
    officer, custodian = make_officer(), make_user()
    room = make_room()

    hold = legal_hold_place(
        actor=officer,
        matter="SEC v. Desk",
        reason="subpoena",
        rooms=[room],
        custodians=[custodian],
        starts_on=date(2024, 1, 1),
        ends_on=date(2024, 12, 31),
    )

    assert room_legal_hold(room.pk)
    assert set(hold.rooms.all()) == {room}
    assert set(hold.custodians.all()) == {custodian}
    [placed] = events("legal_hold.placed")
    assert placed.extra["matter"] == "SEC v. Desk"
    assert placed.extra["rooms"] == [room.pk]

    legal_hold_release(actor=officer, hold=hold, reason="matter settled")

    hold.refresh_from_db()
    assert hold.released_by == officer
    assert hold.release_reason == "matter settled"
    assert not room_legal_hold(room.pk)
    assert len(events("legal_hold.released")) == 1


def test_a_custodian_hold_puts_every_room_they_wrote_in_under_hold() -> None:
    officer, custodian, other = make_officer(), make_user(), make_user()
    written, untouched = make_room(owner=custodian), make_room(owner=other)
    post_aged(sender=custodian, room=written, days=1)

    legal_hold_place(actor=officer, matter="M", reason="r", custodians=[custodian])

    assert room_legal_hold(written.pk)
    assert not room_legal_hold(untouched.pk)


@pytest.mark.parametrize(
    ("matter", "reason", "message"),
    [
        ("", "subpoena", "a matter is required"),
        ("  ", "subpoena", "a matter is required"),
        ("SEC v. Desk", "", "a reason is required"),
    ],
)
def test_a_hold_without_a_matter_or_reason_is_refused(
    matter: str, reason: str, message: str
) -> None:
    officer, room = make_officer(), make_room()

    with pytest.raises(ComplianceRefused, match=message):
        legal_hold_place(actor=officer, matter=matter, reason=reason, rooms=[room])

    assert not LegalHold.objects.exists()
    assert not events("legal_hold.placed")
    assert len(events("legal_hold.refused")) == 1


def test_a_hold_whose_range_ends_before_it_starts_is_refused() -> None:
    officer, room = make_officer(), make_room()

    with pytest.raises(ComplianceRefused, match="ends before it starts"):
        legal_hold_place(
            actor=officer,
            matter="M",
            reason="r",
            rooms=[room],
            starts_on=date(2025, 2, 1),
            ends_on=date(2025, 1, 31),
        )

    assert not LegalHold.objects.exists()
    [refusal] = events("legal_hold.refused")
    assert refusal.extra["reason"] == "range ends before it starts"


def test_a_hold_naming_nothing_is_refused() -> None:
    with pytest.raises(ComplianceRefused, match="at least one room or custodian"):
        legal_hold_place(actor=make_officer(), matter="M", reason="r")

    assert not LegalHold.objects.exists()
    assert len(events("legal_hold.refused")) == 1


def test_releasing_a_released_hold_is_refused_and_changes_nothing() -> None:
    officer, room = make_officer(), make_room()
    hold = legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])
    legal_hold_release(actor=officer, hold=hold, reason="settled")
    first = LegalHold.objects.get(pk=hold.pk)

    with pytest.raises(ComplianceRefused, match="already released"):
        legal_hold_release(actor=make_officer(), hold=hold, reason="again")

    again = LegalHold.objects.get(pk=hold.pk)
    assert (again.released_at, again.released_by_id, again.release_reason) == (
        first.released_at,
        first.released_by_id,
        "settled",
    )
    assert len(events("legal_hold.released")) == 1
    assert events("legal_hold.refused")[0].extra["reason"] == "already released"


def test_a_release_without_a_reason_is_refused() -> None:
    officer, room = make_officer(), make_room()
    hold = legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])

    with pytest.raises(ComplianceRefused, match="release reason is required"):
        legal_hold_release(actor=officer, hold=hold, reason=" ")

    assert LegalHold.objects.get(pk=hold.pk).is_active
    assert len(events("legal_hold.refused")) == 1


def test_a_member_places_no_hold() -> None:
    with pytest.raises(ComplianceRefused):
        legal_hold_place(actor=make_user(), matter="M", reason="r", rooms=[make_room()])

    assert not LegalHold.objects.exists()
    assert events("legal_hold.refused")[0].extra["reason"] == "not allowed"


def test_a_hold_through_the_last_day_a_date_can_name_holds_and_breaks_nothing() -> None:
    # given an old message in a room, a 30-day policy, and a hold on the room "until
    # further notice" entered as the last day a date can name
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    old = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=officer, room=None, keep_days=30)
    legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room], ends_on=date.max)

    # when the room's hold is read and retention runs
    held = room_legal_hold(room.pk)
    report = retention_apply()

    # then the room is held, the run finished and kept the message
    assert held is True
    assert report.totals()["messages"] == 0
    assert Message.objects.filter(pk=old.pk).exists()
    assert RetentionRun.objects.get(pk=report.run_id).state == RetentionRun.State.FINISHED


@pytest.mark.parametrize("keep_days", [1_000_000, 3_000_000_000])
def test_a_policy_longer_than_a_date_can_count_is_refused_and_audited(keep_days: int) -> None:
    # given a default policy
    officer = make_officer()
    retention_policy_set(actor=officer, room=None, keep_days=3000)

    # when an officer asks for more days than a date can count back
    with pytest.raises(ComplianceRefused, match="at most 36500 days"):
        retention_policy_set(actor=officer, room=None, keep_days=keep_days)

    # then nothing changed and the attempt is audited
    assert RetentionPolicy.objects.get(room=None).keep_days == 3000
    [refusal] = events("retention.policy.refused")
    assert refusal.extra["reason"] == "above the longest finite policy"
    assert refusal.extra["keep_days"] == keep_days
    assert len(events("retention.policy.set")) == 1


def test_a_stored_policy_longer_than_a_date_can_count_purges_nothing_and_fails_no_run() -> None:
    # given an old message and a policy stored before the longest was enforced
    owner = make_user()
    room = make_room(owner=owner)
    old = post_aged(sender=owner, room=room, days=90)
    retention_policy_set(actor=make_officer(), room=None, keep_days=3000)
    RetentionPolicy.objects.filter(room=None).update(keep_days=1_000_000)

    # when retention runs
    report = retention_apply()

    # then the run finished and kept the message
    assert Message.objects.filter(pk=old.pk).exists()
    assert RetentionRun.objects.get(pk=report.run_id).state == RetentionRun.State.FINISHED
