"""The admin is a read-only browser; searches and exports by officers are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from audit import signing
from audit.actions import AuditAction
from audit.exportfile import export_verify
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_checkpoint_write
from tests.accounts.factories import make_user
from tests.audit.factories import (
    actions_since,
    log_state,
    make_events,
    make_officer,
)
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

EVENTS = "/admin/audit/auditevent/"
CHECKPOINTS = "/admin/audit/auditcheckpoint/"


@pytest.fixture
def officer_client() -> Client:
    return verified_client(make_officer())


def rows() -> list[tuple[object, ...]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "action", "extra", "hash"))


def test_an_officer_cannot_add_change_or_delete_events(officer_client: Client) -> None:
    # given events, viewed by a compliance officer with a verified session
    event = make_events(2)[0]
    assert officer_client.get(f"{EVENTS}{event.seq}/change/").status_code == 200
    before = rows()

    # when they try to add, change and delete through the admin
    add_get = officer_client.get(f"{EVENTS}add/")
    add_post = officer_client.post(f"{EVENTS}add/", {"seq": 99, "action": "auth.logout"})
    change = officer_client.post(
        f"{EVENTS}{event.seq}/change/", {"action": "auth.logout", "actor_username": "mallory"}
    )
    delete_get = officer_client.get(f"{EVENTS}{event.seq}/delete/")
    delete_post = officer_client.post(f"{EVENTS}{event.seq}/delete/", {"post": "yes"})

    # then each is refused, nothing changed, and each refusal is on the record
    assert [add_get.status_code, add_post.status_code, change.status_code] == [403, 403, 403]
    assert [delete_get.status_code, delete_post.status_code] == [403, 403]
    assert rows()[: len(before)] == before
    assert [row[1] for row in rows()[len(before) :]] == ["access.refused"] * 5


def test_there_is_no_bulk_delete(officer_client: Client) -> None:
    # given events
    events = make_events(3)
    page = officer_client.get(EVENTS)
    assert page.status_code == 200
    assert b"delete_selected" not in page.content
    before = rows()

    # when the bulk delete action is posted anyway
    response = officer_client.post(
        EVENTS,
        {"action": "delete_selected", "_selected_action": [e.seq for e in events], "post": "yes"},
    )

    # then nothing is deleted
    assert response.status_code in {200, 302}
    assert rows() == before


def test_an_officer_cannot_change_checkpoints(officer_client: Client) -> None:
    make_events(1)
    checkpoint = audit_checkpoint_write()
    assert checkpoint is not None
    before = list(AuditCheckpoint.objects.values_list("seq", "head_hash", "signature"))

    assert officer_client.get(CHECKPOINTS).status_code == 200
    assert officer_client.get(f"{CHECKPOINTS}add/").status_code == 403
    assert (
        officer_client.post(f"{CHECKPOINTS}{checkpoint.pk}/change/", {"seq": 1}).status_code == 403
    )
    assert (
        officer_client.post(f"{CHECKPOINTS}{checkpoint.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert list(AuditCheckpoint.objects.values_list("seq", "head_hash", "signature")) == before


def test_an_officer_browses_without_being_recorded_until_searching() -> None:
    # given an officer
    make_events(3)
    client = verified_client(make_officer())
    before = log_state()

    # when they open the list and page through it, then nothing is recorded
    assert client.get(EVENTS).status_code == 200
    assert client.get(EVENTS, {"p": "0"}).status_code == 200
    assert log_state() == before


def test_an_officer_search_is_recorded() -> None:
    # given an officer and an event with a known request id
    officer = make_officer(username="officer")
    client = verified_client(officer)
    make_events(2)

    # when they search
    response = client.get(EVENTS, {"q": "system:tests"})

    # then the results show and the search is on record
    assert response.status_code == 200
    searched = AuditEvent.objects.get(action=AuditAction.AUDIT_SEARCHED)
    assert (searched.actor_id, searched.actor_username) == (officer.pk, "officer")
    assert searched.extra["q"] == "system:tests"
    assert searched.extra["filters"] == []
    assert searched.request_id


def test_an_officer_filter_is_recorded() -> None:
    client = verified_client(make_officer())
    make_events(2)

    response = client.get(EVENTS, {"action": "auth.login.failed", "target_type": ""})

    assert response.status_code == 200
    searched = AuditEvent.objects.get(action=AuditAction.AUDIT_SEARCHED)
    assert ["action", "auth.login.failed"] in searched.extra["filters"]


def test_a_search_parameter_named_like_a_secret_does_not_break_the_page() -> None:
    client = verified_client(make_officer())
    response = client.get(EVENTS, {"q": "x", "password": "y"})
    # Django redirects an unknown lookup to ?e=1; what matters is: no 500.
    assert response.status_code in {200, 302}


def test_staff_without_the_permission_is_refused_and_only_the_refusal_is_recorded() -> None:
    make_events(2)
    client = verified_client(make_user(is_staff=True))
    before = log_state()

    assert client.get(EVENTS, {"q": "x"}).status_code == 403
    assert client.get(CHECKPOINTS).status_code == 403
    # no search is recorded as made: only the two refusals
    assert actions_since(before) == ["access.refused", "access.refused"]


def test_the_export_action_streams_a_verifiable_recorded_export(tmp_path: Path) -> None:
    # given events and an officer
    events = make_events(4)
    officer = make_officer()
    client = verified_client(officer)

    # when the officer exports events 2-3 from the list
    response = client.post(
        EVENTS,
        {"action": "export_selected_range", "_selected_action": [events[1].seq, events[2].seq]},
    )

    # then a JSONL export streams, verifies, and is recorded
    assert response.status_code == 200
    path = tmp_path / "export.jsonl"
    path.write_bytes(response.getvalue())
    result = export_verify(path, [signing.public_key()])
    assert result.ok, result.message
    exported = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert exported.actor_id == officer.pk
    assert exported.extra["via"] == "admin"
    assert exported.extra["first_seq"] == events[1].seq


def test_an_officer_sees_checkpoints() -> None:
    make_events(1)
    audit_checkpoint_write()
    client = verified_client(make_officer())
    response = client.get(CHECKPOINTS)
    assert response.status_code == 200
    assert b"checkpoint" in response.content.lower()
