"""audit_record: what an event holds, and that it lives and dies with its action."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.test import RequestFactory

from audit import chain
from audit.actions import AuditAction
from audit.extra import ForbiddenExtraKeyError
from audit.models import AuditEvent
from audit.selectors import audit_event_rows
from audit.services import AuditTarget, SystemActor, audit_record
from safechat.middleware import current_request_id
from tests.accounts.factories import make_user
from tests.audit.factories import log_state, make_event, make_events

pytestmark = pytest.mark.django_db


def test_an_event_snapshots_the_user_target_and_request() -> None:
    # given a user acting through a request that carries a request id
    alice = make_user(username="alice")
    bob = make_user(username="bob")
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="A" * 400)
    request.request_id = "req-0123456789"  # type: ignore[attr-defined]

    # when an action on bob is recorded
    event = audit_record(
        actor=alice,
        action=AuditAction.ACCOUNT_DEACTIVATED,
        target=bob,
        extra={"reason": "left the bank"},
        request=request,
    )

    # then the event holds snapshots, never references
    stored = AuditEvent.objects.get(seq=event.seq)
    assert (stored.actor_type, stored.actor_id, stored.actor_username) == (
        "user",
        alice.pk,
        "alice",
    )
    assert (stored.target_type, stored.target_id) == ("accounts.user", str(bob.pk))
    assert stored.source_ip == "203.0.113.9"
    assert stored.user_agent == "A" * 256
    assert stored.request_id == "req-0123456789"
    assert stored.extra == {"reason": "left the bank"}
    assert stored.action == "account.deactivated"


def test_system_and_anonymous_actors_and_explicit_targets() -> None:
    # when a system job and an anonymous visitor act
    system = audit_record(
        actor=SystemActor("retention"),
        action=AuditAction.RETENTION_PURGED,
        target=AuditTarget("rooms.room", "12"),
    )
    anonymous = audit_record(actor=AnonymousUser(), action=AuditAction.AUTH_LOGIN_FAILED)
    nobody = audit_record(actor=None, action="auth.login.failed")

    # then each is recorded under its kind of actor
    assert (system.actor_type, system.actor_id, system.actor_username) == (
        "system", None, "system:retention",
    )  # fmt: skip
    assert (system.target_type, system.target_id) == ("rooms.room", "12")
    assert (anonymous.actor_type, anonymous.actor_username) == ("anonymous", "")
    assert nobody.actor_type == "anonymous"


def test_the_request_id_falls_back_to_the_context() -> None:
    # given code running under a request id but without the request object (a task, a service)
    token = current_request_id.set("ctx-request-77")
    try:
        event = make_event()
    finally:
        current_request_id.reset(token)

    # then the event carries it; outside any request it is empty
    assert event.request_id == "ctx-request-77"
    assert make_event().request_id == ""


def test_events_form_a_gap_free_linked_chain() -> None:
    # given some events
    events = make_events(5)

    # then seqs are consecutive and each links to the previous hash
    seqs = [event.seq for event in events]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
        assert event.occurred_at >= previous.occurred_at
    assert chain.chain_verify(audit_event_rows()).intact


def test_an_action_that_rolls_back_takes_its_event_with_it() -> None:
    # given the log's state
    before = log_state()
    user = make_user()

    # when an action records its event and then fails
    def action() -> None:
        with transaction.atomic():
            user.first_name = "Changed"
            user.save()
            audit_record(actor=user, action=AuditAction.ROOM_CREATED)
            raise RuntimeError("the action failed after recording")

    with pytest.raises(RuntimeError):
        action()

    # then neither the action nor its event happened, and the head did not move
    user.refresh_from_db()
    assert user.first_name == ""
    assert log_state() == before


def test_an_action_whose_event_cannot_be_written_does_not_happen() -> None:
    # given an action that records a refused event inside its transaction
    user = make_user()
    before = log_state()

    def action() -> None:
        with transaction.atomic():
            user.first_name = "Changed"
            user.save()
            audit_record(
                actor=user, action=AuditAction.AUTH_PASSWORD_CHANGED, extra={"password": "x"}
            )

    # when it runs, then the refused event aborts it
    with pytest.raises(ForbiddenExtraKeyError):
        action()

    # then the action rolled back too
    user.refresh_from_db()
    assert user.first_name == ""
    assert log_state() == before


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"action": "room.exploded"}, ValueError),
        ({"action": "ROOM_CREATED"}, ValueError),
        ({"action": 42}, TypeError),
        ({"actor": "alice"}, TypeError),
        ({"target": "rooms.room:1"}, TypeError),
        ({"extra": ["not", "a", "mapping"]}, TypeError),
        ({"extra": {"blob": "x" * 5000}}, ValueError),
        ({"extra": {"ratio": 0.25}}, ValueError),
        ({"extra": {"when": object()}}, ValueError),
        ({"extra": {"ids": {1, 2}}}, ValueError),
    ],
    ids=[
        "unknown-action", "member-name-not-value", "non-string-action", "bad-actor",
        "bad-target", "extra-not-mapping", "oversized-extra", "float", "object", "set",
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_writes_nothing(kwargs: dict[str, Any], error: type) -> None:
    # given the log's state
    make_event()
    before = log_state()
    arguments: dict[str, Any] = {"actor": None, "action": AuditAction.AUTH_LOGOUT, **kwargs}

    # when a caller passes bad input, then it is refused
    with pytest.raises(error):
        audit_record(**arguments)

    # and no event was written, the head is unchanged
    assert log_state() == before


def test_the_extra_size_limit_is_a_setting(settings: Any) -> None:
    settings.SAFECHAT_AUDIT_EXTRA_MAX_BYTES = 64
    before = log_state()
    with pytest.raises(ValueError, match="limit is 64"):
        make_event(extra={"reason": "r" * 80})
    assert log_state() == before
    assert make_event(extra={"reason": "short"}).extra == {"reason": "short"}


@pytest.mark.parametrize(
    "extra",
    [
        {"password": "hunter2"},
        {"new_password": "x"},
        {"newPassword": "x"},
        {"PASSWORD": "x"},
        {"password_hash": "x"},
        {"code": "123456"},
        {"otp": "123456"},
        {"otp_code": "123456"},
        {"backup_codes": ["a", "b"]},
        {"token": "abc"},
        {"api-token": "abc"},
        {"accessToken": "abc"},
        {"secret": "s"},
        {"client_secret_value": "s"},
        {"key": "k"},
        {"api_key": "k"},
        {"apikey": "k"},
        {"private_key": "k"},
        {"seed": "s"},
        {"plaintext": "hello"},
        {"text": "hello"},
        {"message_text": "hello"},
        {"content": "file bytes"},
        {"body": "hello"},
        {"message": "hello"},
        {"nested": {"deeper": {"password": "x"}}},
        {"list": [{"token": "x"}]},
    ],
    ids=lambda extra: str(extra)[:40],
)
def test_secrets_and_content_are_refused_in_extra(extra: dict[str, Any]) -> None:
    before = log_state()
    with pytest.raises(ForbiddenExtraKeyError, match="may not hold secrets"):
        make_event(extra=extra)
    assert log_state() == before


@pytest.mark.parametrize(
    "extra",
    [
        {"token_id": 3},
        {"kek_version": 2},
        {"key_id": "ab12"},
        {"epoch": 4, "reason": "member-removed", "recipients": 3},
        {"message_id": 99, "room_id": 5},
        {"device": "phone", "username": "alice"},
        {"copies_destroyed": 3, "to_version": 2},
    ],
)
def test_identifiers_and_counts_are_allowed_in_extra(extra: dict[str, Any]) -> None:
    assert make_event(extra=extra).extra == extra


def test_an_unsaved_target_is_refused() -> None:
    from accounts.models import User

    before = log_state()
    with pytest.raises(ValueError, match="unsaved"):
        make_event(target=User(username="ghost"))
    assert log_state() == before


def test_unusual_characters_hash_the_same_in_the_database_and_the_verifier() -> None:
    # given text that JSON must escape, and text it must not (on PostgreSQL the
    # database hashes the canonical form; the verifier re-computes it in Python)
    user = make_user(username="zoë.ñandú")
    request = RequestFactory().get(
        "/", REMOTE_ADDR="2001:db8::1", HTTP_USER_AGENT='Mozilla "quoted" \\ back ü 漢字 😀'
    )

    # when events are recorded
    make_event(actor=user, request=request, extra={"reason": 'line\nbreak "q" \\ ☃', "n": -1})
    make_event(extra={"nested": {"b": [1, {"ä": None}], "a": True}, "big": 2**62})

    # then the chain verifies
    report = chain.chain_verify(audit_event_rows())
    assert report.intact, report.problem
    assert AuditEvent.objects.get(actor_username="zoë.ñandú").source_ip == "2001:db8::1"
