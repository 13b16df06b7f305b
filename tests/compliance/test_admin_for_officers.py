"""The compliance admin as an officer uses it: rooms picked by their names, people by the
one selector of people, and every use of a power on the record as theirs
(issue "Roles, separation of duties and the admin", items 7, 10 and 11)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from guardian.utils import get_anonymous_user

from accounts.models import User
from audit.models import AuditEvent
from compliance.services import retention_policy_set
from compliance.tasks import apply_retention_task
from tests.accounts.factories import make_user, sign_in_client
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

OPTION = re.compile(r'<option value="\d+"[^>]*>([^<]*)</option>')


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def test_placing_a_hold_offers_rooms_by_their_names() -> None:
    # given a room with a name, and an officer about to place a hold
    room = make_room(name="Project Falcon")

    # when the officer opens the form
    page = client_for(make_officer()).get("/admin/compliance/legalhold/add/")

    # then the room is offered by its name, not by its id
    assert page.status_code == 200
    offered = OPTION.findall(page.content.decode())
    assert "Project Falcon" in " ".join(offered), offered
    assert f"room {room.pk}" not in offered


def test_placing_a_hold_offers_people_never_the_system_row() -> None:
    # given a person, and django-guardian's internal anonymous user row
    person = make_user(
        username="custodian", first_name="Cara", last_name="Stone", email="cs@bank.example"
    )
    system_row = get_anonymous_user()

    # when an officer opens the form
    page = client_for(make_officer()).get("/admin/compliance/legalhold/add/")

    # then the person is offered by name, username and e-mail, and the system row is not
    offered = OPTION.findall(page.content.decode())
    assert f"Cara Stone (@{person.username}, cs@bank.example)" in offered
    assert not any(system_row.get_username() in label for label in offered)


def test_a_room_policy_offers_rooms_by_their_names() -> None:
    room = make_room(name="Project Falcon")

    page = client_for(make_officer()).get("/admin/compliance/retentionpolicy/add/")

    offered = OPTION.findall(page.content.decode())
    assert "Project Falcon" in " ".join(offered), offered
    assert f"room {room.pk}" not in offered


def test_applying_retention_now_is_on_the_record_as_the_officers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an officer and the organisation's policy; the worker is not running here
    officer = make_officer()
    policy = retention_policy_set(actor=officer, room=None, keep_days=None)
    monkeypatch.setattr(apply_retention_task, "delay", lambda *args, **kwargs: None)
    seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    # when the officer asks for retention to run now
    client_for(officer).post(
        "/admin/compliance/retentionpolicy/",
        {"action": "apply_now", "_selected_action": [policy.pk]},
    )

    # then that request (a purge they set off) is recorded as theirs, from the admin
    theirs = AuditEvent.objects.filter(seq__gt=seq, actor_id=officer.pk, channel="admin").exclude(
        action="audit.searched"
    )
    assert theirs.exists()
