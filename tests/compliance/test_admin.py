"""The admin for compliance officers: policies and holds listed, searched, filtered, and
changed only through the services (refusals shown on the form and audited)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.test import Client
from pytest_django import Settings

from accounts.models import User
from accounts.roles import Role
from accounts.services import role_revoke
from audit.models import AuditEvent
from compliance.models import LegalHold, MessageTombstone, RetentionPolicy, RetentionRun
from compliance.services import legal_hold_place, retention_apply, retention_policy_set
from compliance.tasks import apply_retention_task
from rooms.models import Message
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.compliance.factories import make_officer, post_aged
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def test_an_officer_sees_policies_holds_runs_and_tombstones() -> None:
    client = client_for(make_officer())

    page = client.get("/admin/")

    links = {m["admin_url"] for app in page.context["app_list"] for m in app["models"]}
    assert {
        "/admin/compliance/retentionpolicy/",
        "/admin/compliance/legalhold/",
        "/admin/compliance/retentionrun/",
        "/admin/compliance/messagetombstone/",
    } <= links
    for path in links & {"/admin/compliance/retentionrun/", "/admin/compliance/messagetombstone/"}:
        assert client.get(path).status_code == 200
        assert client.get(path + "add/").status_code == 403


def test_an_officer_places_a_hold_from_the_admin() -> None:
    officer, custodian = make_officer(), make_user(username="carla")
    room = make_room(name="Rates desk")
    client = client_for(officer)

    response = client.post(
        "/admin/compliance/legalhold/add/",
        {
            "matter": "SEC v. Desk",
            "reason": "subpoena of March",
            "rooms": [room.pk],
            "custodians": [custodian.pk],
            "starts_on": "2024-01-01",
            "ends_on": "2024-06-30",
        },
    )

    assert response.status_code == 302
    hold = LegalHold.objects.get()
    assert (hold.matter, hold.placed_by) == ("SEC v. Desk", officer)
    assert set(hold.custodians.all()) == {custodian}
    assert AuditEvent.objects.filter(action="legal_hold.placed").count() == 1
    listing = client.get("/admin/compliance/legalhold/", {"q": "carla", "status": "active"})
    assert "SEC v. Desk" in listing.content.decode()


def test_a_bad_hold_from_the_admin_shows_the_error_changes_nothing_and_is_audited() -> None:
    client = client_for(make_officer())
    room = make_room()

    response = client.post(
        "/admin/compliance/legalhold/add/",
        {"matter": "M", "reason": "", "rooms": [room.pk], "starts_on": "", "ends_on": ""},
    )

    assert response.status_code == 200
    assert "a reason is required" in response.content.decode()
    assert not LegalHold.objects.exists()
    assert AuditEvent.objects.filter(action="legal_hold.refused").count() == 1


def test_an_officer_releases_a_hold_with_a_reason_and_a_released_hold_is_read_only() -> None:
    officer = make_officer()
    hold = legal_hold_place(actor=officer, matter="M", reason="r", rooms=[make_room()])
    client = client_for(officer)
    page = f"/admin/compliance/legalhold/{hold.pk}/change/"

    empty = client.post(page, {"release_reason": ""})
    assert "release reason is required" in empty.content.decode()
    assert LegalHold.objects.get(pk=hold.pk).is_active

    done = client.post(page, {"release_reason": "matter closed"})

    assert done.status_code == 302
    released = LegalHold.objects.get(pk=hold.pk)
    assert (released.released_by, released.release_reason) == (officer, "matter closed")
    again = client.post(page, {"release_reason": "twice"})
    assert again.status_code == 302  # back to the page, which says it was released
    assert LegalHold.objects.get(pk=hold.pk).release_reason == "matter closed"
    assert client.get(page).status_code == 200
    refusals = AuditEvent.objects.filter(action="legal_hold.refused").order_by("seq")
    assert [e.extra["reason"] for e in refusals] == ["empty release reason", "already released"]


def test_a_policy_below_the_minimum_from_the_admin_is_refused_on_the_form(
    settings: Settings,
) -> None:
    settings.SAFECHAT_RETENTION_MINIMUM_DAYS = 2190
    client = client_for(make_officer())

    refused = client.post("/admin/compliance/retentionpolicy/add/", {"keep_days": "30"})
    assert refused.status_code == 200
    assert "at least 2190 days" in refused.content.decode()
    assert not RetentionPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="retention.policy.refused").count() == 1

    accepted = client.post("/admin/compliance/retentionpolicy/add/", {"keep_days": "2555"})

    assert accepted.status_code == 302
    assert RetentionPolicy.objects.get(room=None).keep_days == 2555


def test_an_officer_changes_a_room_override_from_the_admin() -> None:
    officer = make_officer()
    room = make_room()
    policy = retention_policy_set(actor=officer, room=room, keep_days=400)
    client = client_for(officer)

    response = client.post(
        f"/admin/compliance/retentionpolicy/{policy.pk}/change/", {"keep_days": ""}
    )

    assert response.status_code == 302
    assert RetentionPolicy.objects.get(room=room).keep_days is None


def test_a_security_admin_manages_no_holds_or_policies() -> None:
    client = client_for(grant_role(make_user(), Role.SECURITY_ADMIN))

    assert client.get("/admin/compliance/legalhold/").status_code == 403
    assert (
        client.post("/admin/compliance/legalhold/add/", {"matter": "M", "reason": "r"}).status_code
        == 403
    )
    assert (
        client.post("/admin/compliance/retentionpolicy/add/", {"keep_days": "3000"}).status_code
        == 403
    )
    assert not LegalHold.objects.exists()
    assert not RetentionPolicy.objects.exists()


def test_the_room_page_shows_the_derived_hold() -> None:
    officer = make_officer()
    room = make_room(name="Held room")
    legal_hold_place(actor=officer, matter="M", reason="r", rooms=[room])

    page = client_for(officer).get("/admin/rooms/room/")

    assert page.status_code == 200
    assert 'alt="True"' in page.content.decode()


def test_an_officer_dry_runs_from_the_policy_list_and_nothing_changes() -> None:
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    message = post_aged(sender=owner, room=room, days=90)
    policy = retention_policy_set(actor=officer, room=None, keep_days=30)
    client = client_for(officer)

    response = client.post(
        "/admin/compliance/retentionpolicy/",
        {"action": "dry_run", "_selected_action": [policy.pk]},
        follow=True,
    )

    shown = [str(m) for m in response.context["messages"]]
    assert any("1 messages" in line and "would be purged" in line for line in shown), shown
    assert Message.objects.filter(pk=message.pk).exists()
    assert AuditEvent.objects.filter(action="retention.dry_run").count() == 1


def test_apply_now_queues_the_job_as_the_officers_request(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    # given an officer, a policy, and a worker queue that records what is sent to it
    officer = make_officer()
    policy = retention_policy_set(actor=officer, room=None, keep_days=30)
    queued: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, kwargs: queued.append((name, kwargs))
    )

    # when the officer asks for retention now
    with django_capture_on_commit_callbacks(execute=True):
        client_for(officer).post(
            "/admin/compliance/retentionpolicy/",
            {"action": "apply_now", "_selected_action": [policy.pk]},
        )

    # then one run is queued, on their behalf, and the request is on the record as theirs
    assert queued == [("compliance.apply_retention", {"requested_by": officer.pk})]
    requested = AuditEvent.objects.get(action="retention.run.requested")
    assert (requested.actor_id, requested.channel) == (officer.pk, "admin")


def test_a_run_asked_for_by_someone_who_lost_the_right_runs_nothing() -> None:
    # given a run asked for by an officer who is no longer one when the worker starts it
    officer = make_officer()
    retention_policy_set(actor=officer, room=None, keep_days=30)
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)
    role_revoke(actor=User.objects.get(pk=admin.pk), user=officer, role=Role.COMPLIANCE_OFFICER)

    # when the worker runs it
    run_id = apply_retention_task(requested_by=officer.pk)

    # then nothing ran, and the refusal is on the record
    assert run_id == 0
    assert not RetentionRun.objects.exists()
    refusal = AuditEvent.objects.get(action="retention.run.refused")
    assert refusal.actor_id == officer.pk


@pytest.mark.parametrize("keep_days", ["-5", "99999999999"])
def test_a_policy_out_of_range_from_the_admin_is_refused_by_the_service_and_audited(
    settings: Settings, keep_days: str
) -> None:
    # given an officer on the policy page
    settings.SAFECHAT_RETENTION_MINIMUM_DAYS = 2190
    client = client_for(make_officer())

    # when they ask for a negative or a far too large number of days
    refused = client.post("/admin/compliance/retentionpolicy/add/", {"keep_days": keep_days})

    # then the page says why, nothing is stored and the attempt is audited
    assert refused.status_code == 200
    assert "at least 2190 days" in refused.content.decode()
    assert not RetentionPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="retention.policy.refused").count() == 1


def test_the_hold_form_says_its_days_are_utc_and_inclusive() -> None:
    # given an officer
    client = client_for(make_officer())

    # when they open the page that places a hold
    page = client.get("/admin/compliance/legalhold/add/").content.decode()

    # then both days say how they are read
    assert "First day covered (UTC, inclusive)" in page
    assert "Last day covered (UTC, inclusive)" in page


def test_a_release_sent_after_another_officer_released_the_hold_is_refused_and_audited() -> None:
    # given a hold whose release page a first officer opened, and a second officer who
    # released it meanwhile
    first, second = make_officer(), make_officer()
    hold = legal_hold_place(actor=first, matter="M", reason="r", rooms=[make_room()])
    client = client_for(first)
    page = f"/admin/compliance/legalhold/{hold.pk}/change/"
    assert client.get(page).status_code == 200
    client_for(second).post(page, {"release_reason": "matter closed"})
    assert not LegalHold.objects.get(pk=hold.pk).is_active

    # when the first officer sends their release
    again = client.post(page, {"release_reason": "settled"}, follow=True)

    # then they read that it was already released; nothing changed; the attempt is audited
    assert again.status_code == 200
    assert "This hold was already released" in again.content.decode()
    released = LegalHold.objects.get(pk=hold.pk)
    assert (released.released_by, released.release_reason) == (second, "matter closed")
    [refusal] = AuditEvent.objects.filter(action="legal_hold.refused")
    assert refusal.extra["reason"] == "already released"
    assert AuditEvent.objects.filter(action="legal_hold.released").count() == 1


def test_a_released_hold_s_page_shows_who_released_it_and_why() -> None:
    # given a released hold
    officer = make_officer()
    hold = legal_hold_place(actor=officer, matter="SEC v. Desk", reason="r", rooms=[make_room()])
    client = client_for(officer)
    page = f"/admin/compliance/legalhold/{hold.pk}/change/"
    client.post(page, {"release_reason": "matter closed"})

    # when an officer opens it from the list
    shown = client.get(page)

    # then it shows, read only, with the release's reason
    assert shown.status_code == 200
    assert "matter closed" in shown.content.decode()


def test_a_run_s_page_checks_its_tombstones_against_the_audit_log() -> None:
    # given a run that purged two messages, and an officer
    officer, owner = make_officer(), make_user()
    room = make_room(owner=owner)
    purged = [post_aged(sender=owner, room=room, days=100) for _ in range(2)]
    retention_policy_set(actor=officer, room=None, keep_days=30)
    report = retention_apply()
    client = client_for(officer)
    page = f"/admin/compliance/retentionrun/{report.run_id}/change/"

    # when they open the run's page, then again after a tombstone was removed
    intact = client.get(page).content.decode()
    MessageTombstone.objects.filter(message_id=purged[0].pk).delete()
    tampered = client.get(page).content.decode()

    # then the page says the tombstones match, then names what does not
    assert "every batch&#x27;s tombstones match its audit event" in intact
    assert "1 tombstones, 2 purges audited" in tampered
