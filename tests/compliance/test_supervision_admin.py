"""Supervision review in the admin: lexicons, sampling, runs and the queue, for
compliance officers only, every read and decision on the record."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from compliance.models import SupervisionItem, SupervisionLexicon, SupervisionSampling
from compliance.services.supervision import (
    supervision_lexicon_create,
    supervision_run,
    supervision_term_add,
)
from rooms.services import message_post
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("compliance.services.retention._rest", lambda seconds: None)


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_since(seq: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True)
    )


def flagged(text: str = "we guarantee a 20% return") -> tuple[SupervisionItem, User]:
    officer = make_officer()
    lexicon = supervision_lexicon_create(actor=officer, name="Promises")
    supervision_term_add(actor=officer, lexicon=lexicon, kind="phrase", value="guarantee")
    sender = make_user()
    room = make_room(owner=sender, name="Rates desk")
    message = message_post(sender=sender, room=room, text=text)
    supervision_run()
    return SupervisionItem.objects.get(message_id=message.pk), sender


def test_an_officer_creates_a_lexicon_and_adds_a_pattern_through_the_admin() -> None:
    # given an officer in the admin
    client = client_for(make_officer())

    # when they create a lexicon, then add a card-number pattern on its page
    created = client.post(
        "/admin/compliance/supervisionlexicon/add/", {"name": "Cards", "description": ""}
    )
    lexicon = SupervisionLexicon.objects.get(name="Cards")
    added = client.post(
        f"/admin/compliance/supervisionlexicon/{lexicon.pk}/change/",
        {"kind": "pattern", "value": r"\b(?:\d[ -]?){12,18}\d\b", "checksum": "luhn"},
    )

    # then both are stored
    assert created.status_code == 302
    assert added.status_code == 302, added.content.decode()[:2000]
    assert list(lexicon.terms.values_list("kind", "checksum")) == [("pattern", "luhn")]


def test_a_pattern_that_could_backtrack_is_refused_on_the_form() -> None:
    # given an officer and a lexicon
    officer = make_officer()
    lexicon = supervision_lexicon_create(actor=officer, name="Cards")
    seq = last_seq()

    # when they submit a pattern with a look-ahead
    page = client_for(officer).post(
        f"/admin/compliance/supervisionlexicon/{lexicon.pk}/change/",
        {"kind": "pattern", "value": r"(?=\d{16})\d+", "checksum": ""},
    )

    # then the form shows why, nothing is stored, and the attempt is audited
    assert page.status_code == 200
    assert "does not compile" in page.content.decode()
    assert not lexicon.terms.exists()
    assert events_since(seq)[-1] == "supervision.action.refused"


def test_an_officer_sets_a_room_sampling_rate() -> None:
    # given an officer and a room
    room = make_room(name="Rates desk")

    # when they set its rate to 2.5%
    page = client_for(make_officer()).post(
        "/admin/compliance/supervisionsampling/add/", {"room": room.pk, "rate": 250}
    )

    # then it is stored
    assert page.status_code == 302
    assert SupervisionSampling.objects.get().rate == 250


def test_run_now_queues_a_run_as_the_officers_request(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an officer on the runs page
    officer = make_officer()
    client = client_for(officer)
    assert "Run matching now" in client.get("/admin/compliance/supervisionrun/").content.decode()

    # when they press the button
    with (
        mock.patch("compliance.services.supervision.current_app.send_task") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        page = client.post("/admin/compliance/supervisionrun/run-now/")

    # then a run is queued, acting as them, and a GET does nothing
    assert page.status_code == 302
    send.assert_called_once_with("compliance.supervision_run", kwargs={"requested_by": officer.pk})
    assert client.get("/admin/compliance/supervisionrun/run-now/").status_code == 405


def test_a_reviewer_opens_an_item_and_escalates_it() -> None:
    # given a flagged message and a reviewer
    item, _ = flagged()
    client = client_for(make_officer())
    seq = last_seq()

    # when the reviewer opens the item
    page = client.get(f"/admin/compliance/supervisionitem/{item.pk}/change/")

    # then they read the text with its hit marked, the page is not cached, the read audited
    body = page.content.decode()
    assert page.status_code == 200
    assert "<mark>guarantee</mark>" in body
    assert "no-store" in page["Cache-Control"]
    assert events_since(seq) == ["supervision.item.viewed"]

    # when they escalate it with a note
    decided = client.post(
        f"/admin/compliance/supervisionitem/{item.pk}/change/",
        {"decision": "escalate", "note": "promise of returns"},
    )

    # then it is escalated
    assert decided.status_code == 302
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.ESCALATED

    # and another supervisor opening it reads the note, opened from its seal
    again = client_for(make_officer()).get(f"/admin/compliance/supervisionitem/{item.pk}/change/")
    assert '<bdi class="supervision-note">promise of returns</bdi>' in again.content.decode()


def test_a_decision_without_a_note_is_refused_on_the_page() -> None:
    # given a flagged message and a reviewer
    item, _ = flagged()
    client = client_for(make_officer())

    # when they close it without a reason
    page = client.post(
        f"/admin/compliance/supervisionitem/{item.pk}/change/",
        {"decision": "close", "note": ""},
        follow=True,
    )

    # then the page says so and the item stays pending
    assert "A reason is required" in page.content.decode()
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.PENDING


def test_a_reviewer_neither_sees_nor_opens_their_own_messages() -> None:
    # given an item of a message sent by someone who later became an officer
    item, sender = flagged()
    grant_role(sender, Role.COMPLIANCE_OFFICER)
    client = client_for(User.objects.get(pk=sender.pk))
    seq = last_seq()

    # when they list the queue and open the item
    listing = client.get("/admin/compliance/supervisionitem/")
    opened = client.get(f"/admin/compliance/supervisionitem/{item.pk}/change/")

    # then it is not listed, opening it is refused, nothing was read
    assert f"/admin/compliance/supervisionitem/{item.pk}/change/" not in listing.content.decode()
    assert opened.status_code == 403
    assert "supervision.item.viewed" not in events_since(seq)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/compliance/supervisionitem/",
        "/admin/compliance/supervisionlexicon/",
        "/admin/compliance/supervisionsampling/",
        "/admin/compliance/supervisionrun/",
    ],
)
def test_only_compliance_officers_reach_the_supervision_pages(url: str) -> None:
    # given a security administrator (staff, but no compliance officer)
    admin_user = grant_role(make_user(), Role.SECURITY_ADMIN)

    # when they open a supervision page
    page = client_for(User.objects.get(pk=admin_user.pk)).get(url)

    # then the admin refuses it
    assert page.status_code == 403


def test_a_security_admin_cannot_open_an_item(settings: Any) -> None:
    # given a flagged item and a security administrator
    item, _ = flagged()
    admin_user = grant_role(make_user(), Role.SECURITY_ADMIN)
    seq = last_seq()

    # when they open it
    page = client_for(User.objects.get(pk=admin_user.pk)).get(
        f"/admin/compliance/supervisionitem/{item.pk}/change/"
    )

    # then it is refused and nothing was read
    assert page.status_code == 403
    assert "supervision.item.viewed" not in events_since(seq)
