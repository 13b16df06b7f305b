"""Supervision review (issue 20, FINRA 3110): lexicons of phrases and RE2 patterns,
sampling, the matching run through the compliance key, and reviewers' decisions."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from compliance.lexicon import Matcher, Term, TermRefusedError, term_validate
from compliance.models import (
    SupervisionItem,
    SupervisionLexicon,
    SupervisionRun,
    SupervisionSampling,
    SupervisionTerm,
)
from compliance.selectors.supervision import (
    NOTE_SHREDDED,
    OpenedNote,
    supervision_item_open,
    supervision_queue,
)
from compliance.services import ComplianceRefused
from compliance.services import supervision as sv
from compliance.services.supervision import (
    SupervisionBusyError,
    supervision_item_close,
    supervision_item_escalate,
    supervision_lexicon_create,
    supervision_run,
    supervision_run_request,
    supervision_sampling_set,
    supervision_term_add,
)
from rooms.models import Message
from rooms.services import message_edit, message_post
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import clear_key_caches, epoch_key_destroy, room_epoch_key_for
from tests.accounts.factories import make_user
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

REFUSED = "supervision.action.refused"
CARD = "4111 1111 1111 1111"  # a test card number with a valid Luhn digit


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_since(seq: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True)
    )


@pytest.fixture(autouse=True)
def _no_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("compliance.services.retention._rest", lambda seconds: None)


def lexicon(officer: User, *terms: tuple[str, str, str], name: str = "Promises") -> Any:
    found = supervision_lexicon_create(actor=officer, name=name)
    for kind, value, checksum in terms:
        supervision_term_add(
            actor=officer, lexicon=found, kind=kind, value=value, checksum=checksum
        )
    return found


# --- the matcher ---------------------------------------------------------------------


def test_phrases_match_case_and_spacing_insensitively_at_word_boundaries() -> None:
    # given a matcher of one phrase
    matcher = Matcher([Term(1, 7, "phrase", "off the record")])

    # when texts are matched
    hits, total = matcher.match("Strictly OFF   the\nrecord, ok")
    missed, _ = matcher.match("kick-off therecord")

    # then the phrase is found with its offsets, and not inside other words
    assert [(h.term_id, h.lexicon_id, h.start, h.end) for h in hits] == [(1, 7, 9, 25)]
    assert total == 1
    assert missed == []


def test_a_checksum_keeps_only_matches_that_pass_it() -> None:
    # given a card-number pattern with the Luhn check and an IBAN pattern with mod-97
    matcher = Matcher(
        [
            Term(1, 1, "pattern", r"\b(?:\d[ -]?){12,18}\d\b", "luhn"),
            Term(2, 1, "pattern", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b", "iban"),
        ]
    )

    # when a valid and an invalid number of each are matched
    hits, _ = matcher.match(
        f"{CARD}, 4111 1111 1111 1112, GB82 WEST 1234 5698 7654 32, GB00 WEST 1234 5698 7654 32"
    )

    # then only the valid ones are hits
    assert sorted((h.term_id, h.start) for h in hits) == [(1, 0), (2, 42)]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "does not compile"),
        (r"(?=guarantee)", "does not compile"),
        (r"(?<!no )promise", "does not compile"),
        (r"x*", "matches the empty text"),
        (r"((a{50}){50}){50}", "does not compile"),
        ("(unclosed", "does not compile"),
        ("", "not empty"),
        ("a" * 201, "at most 200"),
    ],
)
def test_patterns_that_cannot_run_in_linear_time_or_safely_are_refused(
    pattern: str, why: str
) -> None:
    # when the pattern is validated, then it is refused, saying why
    with pytest.raises(TermRefusedError, match=why):
        term_validate(kind="pattern", value=pattern)


def test_a_pattern_that_would_backtrack_catastrophically_elsewhere_runs_in_linear_time() -> None:
    # given the classic exponential-backtracking pattern, which RE2 runs without backtracking
    matcher = Matcher([Term(1, 1, "pattern", term_validate(kind="pattern", value="(a+)+$b"))])

    # when it meets a long adversarial text
    started = time.monotonic()
    hits, _ = matcher.match("a" * 100_000 + "!")

    # then it answers at once, with no hit
    assert hits == []
    assert time.monotonic() - started < 1.0


# --- lexicons and sampling --------------------------------------------------------------


def test_an_officer_builds_a_lexicon_on_the_record() -> None:
    # given an officer
    officer = make_officer()
    seq = last_seq()

    # when they create a lexicon and add a phrase and a pattern
    found = lexicon(officer, ("phrase", " guarantee ", ""), ("pattern", r"\d{16}", "luhn"))

    # then the terms are stored cleaned, and each step is audited
    assert list(found.terms.values_list("kind", "value", "checksum")) == [
        ("phrase", "guarantee", ""),
        ("pattern", r"\d{16}", "luhn"),
    ]
    assert events_since(seq) == [
        "supervision.lexicon.created",
        "supervision.term.added",
        "supervision.term.added",
    ]


def test_a_bad_pattern_is_refused_audited_and_not_stored() -> None:
    # given an officer's lexicon
    officer = make_officer()
    found = lexicon(officer)
    seq = last_seq()

    # when they add a pattern with a back-reference
    with pytest.raises(ComplianceRefused, match="does not compile"):
        supervision_term_add(actor=officer, lexicon=found, kind="pattern", value=r"(\d)\1")

    # then nothing is stored and the attempt is audited
    assert not SupervisionTerm.objects.exists()
    assert events_since(seq) == [REFUSED]
    event = AuditEvent.objects.get(seq=seq + 1)
    assert event.extra["reason"] == "bad term"


def test_someone_without_the_right_changes_nothing() -> None:
    # given a member who is not a compliance officer
    member = make_user()
    seq = last_seq()

    # when they try to create a lexicon, set a rate, or ask for a run
    for attempt in (
        lambda: supervision_lexicon_create(actor=member, name="Mine"),
        lambda: supervision_sampling_set(actor=member, rate=100),
        lambda: supervision_run_request(actor=member),
        lambda: supervision_run(actor=member),
    ):
        with pytest.raises(ComplianceRefused):
            attempt()

    # then nothing was written but the refusals
    assert not SupervisionLexicon.objects.exists()
    assert not SupervisionSampling.objects.exists()
    assert not SupervisionRun.objects.exists()
    assert events_since(seq) == [REFUSED] * 4


@pytest.mark.parametrize("rate", [-1, 10_001, "50", 1.5, True])
def test_a_rate_out_of_range_is_refused(rate: Any) -> None:
    # given an officer
    officer = make_officer()

    # when they set a bad rate, then it is refused and nothing is stored
    with pytest.raises(ComplianceRefused, match="basis points"):
        supervision_sampling_set(actor=officer, rate=rate)
    assert not SupervisionSampling.objects.exists()


# --- the matching run -------------------------------------------------------------------


def test_a_run_flags_matching_messages_and_stores_no_plaintext() -> None:
    # given three messages, and then lexicons two of them match (made after they were
    # posted, so only the run, the catch-up, matches them)
    officer = make_officer()
    sender = make_user()
    room = make_room(owner=sender)
    plain = message_post(sender=sender, room=room, text="lunch at noon?")
    promise = message_post(sender=sender, room=room, text="I GUARANTEE a 20% return")
    card = message_post(sender=sender, room=room, text=f"my card is {CARD}")
    promises = lexicon(officer, ("phrase", "guarantee", ""))
    cards = lexicon(officer, ("pattern", r"\b(?:\d[ -]?){12,18}\d\b", "luhn"), name="Cards")
    seq = last_seq()

    # when a run matches what was written
    run = supervision_run()

    # then the two matching messages are in the queue, under their lexicons
    assert run.state == SupervisionRun.State.FINISHED
    assert (run.scanned, run.flagged, run.sampled, run.unreadable) == (3, 2, 0, 0)
    items = {i.message_id: i for i in SupervisionItem.objects.all()}
    assert set(items) == {promise.pk, card.pk}
    assert list(items[promise.pk].lexicons.all()) == [promises]
    assert list(items[card.pk].lexicons.all()) == [cards]
    assert plain.pk not in items
    # and no item holds the text, the matched words or the number
    for item in items.values():
        stored = bytes(item.hits)
        assert b"GUARANTEE" not in stored.upper()
        assert b"4111" not in stored
    # and the run is on the record: one read through the compliance key, one batch
    assert events_since(seq) == [
        "supervision.run.started",
        "supervision.read",
        "supervision.matched",
        "supervision.run.finished",
    ]
    read = AuditEvent.objects.get(seq__gt=seq, action="supervision.read")
    assert read.extra["messages"] == 3
    assert read.extra["first_id"] == plain.pk
    assert read.extra["last_id"] == card.pk


def test_the_next_run_reads_only_what_is_new_or_edited() -> None:
    # given a run that matched an innocuous message
    officer = make_officer()
    lexicon(officer, ("phrase", "off the record", ""))
    sender = make_user()
    room = make_room(owner=sender)
    first = message_post(sender=sender, room=room, text="see you at 3")
    supervision_run()

    # when the message is edited to say something flagged, a new one is posted, and a
    # second run goes
    message_edit(actor=sender, message=first, text="this is off the record")
    second = message_post(sender=sender, room=room, text="nothing to see")
    run = supervision_run()

    # then it read the new message and the edited one, and flagged the edit's revision
    assert run.scanned == 2
    item = SupervisionItem.objects.get()
    assert (item.message_id, item.revision) == (first.pk, 1)
    assert run.after_id == second.pk - 1
    # and a third run finds nothing new
    assert supervision_run().scanned == 0


def test_sampling_sends_unflagged_messages_to_review_at_their_rate() -> None:
    # given a room sampled at every message, but one custodian at none
    officer = make_officer()
    sampled_sender, exempt_sender = make_user(), make_user()
    room = make_room(owner=sampled_sender, members=(exempt_sender,))
    supervision_sampling_set(actor=officer, rate=10_000, room=room)
    supervision_sampling_set(actor=officer, rate=0, custodian=exempt_sender)

    # when they post
    kept = [message_post(sender=sampled_sender, room=room, text=f"m{i}") for i in range(3)]
    message_post(sender=exempt_sender, room=room, text="not sampled")

    # then every message of the room is sampled as it is posted, except the exempt
    # custodian's
    assert sorted(SupervisionItem.objects.values_list("message_id", flat=True)) == [
        m.pk for m in kept
    ]
    assert set(SupervisionItem.objects.values_list("reason", flat=True)) == {"sampled"}
    assert set(SupervisionItem.objects.values_list("run", flat=True)) == {None}
    # and the run draws no second sample of them
    assert supervision_run().sampled == 0
    assert SupervisionItem.objects.count() == 3


# --- matching as a message is posted ----------------------------------------------------


def _hits(item: SupervisionItem, message: Message) -> list[list[int]]:
    key = room_epoch_key_for(room_id=message.room_id, number=item.epoch, user_id=message.sender_id)
    return sv.hits_open(key=key, message=message, item=item)


def test_a_post_with_a_term_is_queued_at_once_with_its_hit_encrypted() -> None:
    # given an active lexicon
    officer = make_officer()
    promises = lexicon(officer, ("phrase", "guarantee", ""))
    term = promises.terms.get()
    sender = make_user()
    room = make_room(owner=sender)

    # when a member posts a message using its term
    message = message_post(sender=sender, room=room, text="we guarantee it")

    # then the message is in the queue at once, with no run, under the lexicon
    item = SupervisionItem.objects.get()
    assert (item.message_id, item.revision, item.reason) == (message.pk, 0, "flagged")
    assert item.run_id is None
    assert list(item.lexicons.all()) == [promises]
    # and its hit is stored encrypted under the message's epoch key, never as text
    assert b"guarantee" not in bytes(item.hits)
    assert _hits(item, message) == [[term.pk, 3, 12]]
    # and the run finds it queued already
    run = supervision_run()
    assert (run.scanned, run.flagged) == (1, 0)
    assert SupervisionItem.objects.count() == 1


def test_a_post_without_a_term_is_not_queued() -> None:
    # given an active lexicon and no sampling
    lexicon(make_officer(), ("phrase", "guarantee", ""))
    sender = make_user()

    # when a member posts an innocuous message
    message_post(sender=sender, room=make_room(owner=sender), text="lunch at noon?")

    # then nothing is queued
    assert not SupervisionItem.objects.exists()


def test_an_edit_is_matched_as_it_is_made() -> None:
    # given an innocuous message and an active lexicon
    lexicon(make_officer(), ("phrase", "off the record", ""))
    sender = make_user()
    message = message_post(sender=sender, room=make_room(owner=sender), text="see you at 3")

    # when it is edited to say something flagged
    edited = message_edit(actor=sender, message=message, text="this is off the record")

    # then the edit's revision is queued at once, its hit readable under its epoch key
    item = SupervisionItem.objects.get()
    assert (item.message_id, item.revision, item.reason) == (message.pk, 1, "flagged")
    assert len(_hits(item, edited)) == 1


def test_a_lexicon_change_takes_effect_on_the_next_post() -> None:
    # given a post matched before any term exists
    officer = make_officer()
    sender = make_user()
    room = make_room(owner=sender)
    message_post(sender=sender, room=room, text="a secret plan")
    assert not SupervisionItem.objects.exists()

    # when a term is added, a message posted, the lexicon switched off, another posted
    found = lexicon(officer, ("phrase", "secret", ""))
    flagged = message_post(sender=sender, room=room, text="another secret")
    sv.supervision_lexicon_set_active(actor=officer, lexicon=found, active=False)
    message_post(sender=sender, room=room, text="one more secret")

    # then only the post made while the term was active is queued
    assert list(SupervisionItem.objects.values_list("message_id", flat=True)) == [flagged.pk]


def test_a_failure_to_match_fails_the_post_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an active lexicon and a matcher that breaks (a bug: matching is in memory)
    lexicon(make_officer(), ("phrase", "guarantee", ""))
    sender = make_user()
    room = make_room(owner=sender)
    seq = last_seq()

    def broken(self: Matcher, text: str) -> Any:
        raise RuntimeError("matcher bug")

    monkeypatch.setattr(Matcher, "match", broken)

    # when a member posts
    with pytest.raises(RuntimeError):
        message_post(sender=sender, room=room, text="we guarantee it")

    # then the error is not swallowed: neither the message nor an item nor its event
    assert not Message.objects.filter(room=room).exists()
    assert not SupervisionItem.objects.exists()
    assert "message.posted" not in events_since(seq)


def test_sampling_hits_its_rate_within_tolerance() -> None:
    # given a rate of 5% (500 basis points) and 40,000 draws
    draws = 40_000

    # when each draw decides
    chosen = sum(sv._sampled(500) for _ in range(draws))

    # then the share is 5% within five standard deviations (sqrt(n p (1-p)) = 43.6)
    assert abs(chosen - draws * 0.05) < 5 * 43.6
    assert not any(sv._sampled(0) for _ in range(1000))
    assert all(sv._sampled(10_000) for _ in range(1000))


def test_a_second_run_while_one_works_is_refused_and_a_dead_one_is_taken_over() -> None:
    # given a run working, its lease current
    now = timezone.now()
    live = SupervisionRun.objects.create(
        started_at=now, lease_expires_at=now + timedelta(minutes=5)
    )
    seq = last_seq()

    # when another run starts, then it is refused, audited, and starts nothing
    with pytest.raises(SupervisionBusyError):
        supervision_run()
    assert events_since(seq) == [REFUSED]
    assert SupervisionRun.objects.count() == 1

    # when the lease has passed, then the next run marks it interrupted and works
    SupervisionRun.objects.filter(pk=live.pk).update(lease_expires_at=now - timedelta(seconds=1))
    run = supervision_run()
    live.refresh_from_db()
    assert live.state == SupervisionRun.State.INTERRUPTED
    assert run.state == SupervisionRun.State.FINISHED


def test_a_run_stops_before_its_next_batch_once_its_requester_loses_the_right(
    settings: Any,
) -> None:
    # given a run asked for by an officer, over two batches of one message
    settings.SAFECHAT_SUPERVISION_BATCH = 1
    officer = make_officer()
    sender = make_user()
    room = make_room(owner=sender)
    message_post(sender=sender, room=room, text="one")
    message_post(sender=sender, room=room, text="two")
    calls = {"n": 0}
    real = sv._still_allowed

    def withdrawn_after_first(actor: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            User.objects.filter(pk=officer.pk).update(is_active=False)
        return real(actor)

    # when the officer is deactivated after the first batch
    with mock.patch.object(sv, "_still_allowed", withdrawn_after_first):
        run = supervision_run(actor=officer)

    # then the run stopped with one batch done
    assert run.state == SupervisionRun.State.FAILED
    assert run.error == "right withdrawn"
    assert SupervisionRun.objects.get(pk=run.pk).scanned == 1


def test_asking_for_a_run_queues_it_after_the_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an officer
    officer = make_officer()
    seq = last_seq()

    # when they ask for a run
    with (
        mock.patch("compliance.services.supervision.current_app.send_task") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        supervision_run_request(actor=officer)

    # then the request is audited and the task queued, acting as them
    assert events_since(seq) == ["supervision.run.requested"]
    send.assert_called_once_with("compliance.supervision_run", kwargs={"requested_by": officer.pk})


# --- review -----------------------------------------------------------------------------


def flagged_item(text: str = "we guarantee it") -> tuple[SupervisionItem, Message, User]:
    officer = make_officer()
    lexicon(officer, ("phrase", "guarantee", ""))
    sender = make_user()
    room = make_room(owner=sender)
    message = message_post(sender=sender, room=room, text=text)
    supervision_run()
    return SupervisionItem.objects.get(message_id=message.pk), message, sender


def test_opening_an_item_shows_its_text_and_hits_on_the_record() -> None:
    # given a flagged item and a reviewer
    item, message, _ = flagged_item("We GUARANTEE it")
    reviewer = make_officer()
    seq = last_seq()

    # when the reviewer opens it
    opened = supervision_item_open(officer=reviewer, item=item)

    # then they read the text and which term matched where
    assert opened.status == "ok"
    assert opened.text == "We GUARANTEE it"
    assert [(h.lexicon, h.term, h.fragment) for h in opened.hits] == [
        ("Promises", "guarantee", "GUARANTEE")
    ]
    # and the read is one audit event naming the item, never its content
    assert events_since(seq) == ["supervision.item.viewed"]
    event = AuditEvent.objects.get(seq=seq + 1)
    assert event.extra["message_id"] == message.pk
    assert "GUARANTEE" not in str(event.extra)


def test_reviewers_escalate_with_a_note_and_close_with_a_reason() -> None:
    # given a flagged item and two reviewers
    item, _, _ = flagged_item()
    first, second = make_officer(), make_officer()

    # when one escalates it and another closes it
    supervision_item_escalate(actor=first, item=item, note="promise of returns")
    supervision_item_close(actor=second, item=item, reason="client warned by desk head")

    # then the item holds both decisions
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.CLOSED
    assert (item.escalated_by, item.closed_by) == (first, second)
    opened = supervision_item_open(officer=make_officer(), item=item)
    assert opened.escalation_note == OpenedNote("promise of returns")
    assert opened.close_reason == OpenedNote("client warned by desk head")
    # and it leaves the queue
    assert not supervision_queue(officer=first).exists()


@pytest.mark.parametrize("decision", ["escalate", "close"])
def test_a_decision_without_a_note_is_refused_and_changes_nothing(decision: str) -> None:
    # given a flagged item
    item, _, _ = flagged_item()
    reviewer = make_officer()
    seq = last_seq()

    def decide() -> None:
        if decision == "escalate":
            supervision_item_escalate(actor=reviewer, item=item, note="  ")
        else:
            supervision_item_close(actor=reviewer, item=item, reason="")

    # when a reviewer decides it without a note
    with pytest.raises(ComplianceRefused, match="required"):
        decide()

    # then it stays pending and the attempt is audited
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.PENDING
    assert events_since(seq) == [REFUSED]


def test_nobody_reviews_their_own_messages() -> None:
    # given an item of a message whose sender later became a compliance officer
    item, _, sender = flagged_item()
    from accounts.roles import Role
    from tests.accounts.factories import grant_role

    grant_role(sender, Role.COMPLIANCE_OFFICER)
    reviewer = User.objects.get(pk=sender.pk)
    seq = last_seq()

    # when they try to open, escalate or close it
    with pytest.raises(ComplianceRefused):
        supervision_item_open(officer=reviewer, item=item)
    with pytest.raises(ComplianceRefused, match="own messages"):
        supervision_item_escalate(actor=reviewer, item=item, note="fine")
    with pytest.raises(ComplianceRefused, match="own messages"):
        supervision_item_close(actor=reviewer, item=item, reason="fine")

    # then nothing changed, nothing was read, the attempts are audited
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.PENDING
    assert events_since(seq) == [REFUSED, REFUSED, REFUSED]
    # and their queue leaves the item out
    assert not supervision_queue(officer=reviewer).exists()


def test_a_closed_item_cannot_be_decided_again() -> None:
    # given a closed item
    item, _, _ = flagged_item()
    reviewer = make_officer()
    supervision_item_close(actor=reviewer, item=item, reason="fine")
    seq = last_seq()

    # when another reviewer escalates or closes it
    with pytest.raises(ComplianceRefused, match="closed already"):
        supervision_item_escalate(actor=make_officer(), item=item, note="late")
    with pytest.raises(ComplianceRefused, match="closed already"):
        supervision_item_close(actor=make_officer(), item=item, reason="late")

    # then it is as it was, and the attempts are audited
    item.refresh_from_db()
    assert item.closed_by == reviewer
    assert events_since(seq) == [REFUSED, REFUSED]
    assert supervision_item_open(officer=make_officer(), item=item).close_reason == OpenedNote(
        "fine"
    )


def test_a_thousand_terms_still_match() -> None:
    # given a thousand phrases (more than one automaton of the set's budget may hold)
    terms = [Term(i, 1, "phrase", f"term{i} word{i}") for i in range(1, 1001)]
    matcher = Matcher(terms)

    # when a text holding the last one is matched
    hits, _ = matcher.match("nothing here but term1000   word1000 today")

    # then it is found
    assert [h.term_id for h in hits] == [1000]


def test_a_batch_over_many_rooms_is_read_in_parts_of_bounded_epochs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given messages in three rooms and reads of at most two epochs
    monkeypatch.setattr(sv, "EPOCHS_PER_READ", 2)
    sender = make_user()
    for name in ("a", "b", "c"):
        message_post(sender=sender, room=make_room(owner=sender, name=name), text="hi")
    seq = last_seq()

    # when a run matches them in one batch
    run = supervision_run()

    # then the keys were opened in two reads, together naming every message, in one batch
    reads = AuditEvent.objects.filter(seq__gt=seq, action="supervision.read").order_by("seq")
    assert [len(r.extra["epochs"]) for r in reads] == [2, 1]
    assert sum(r.extra["messages"] for r in reads) == 3
    assert events_since(seq).count("supervision.matched") == 1
    assert run.scanned == 3


def test_switched_off_lexicons_and_terms_flag_nothing_more() -> None:
    # given a lexicon switched off and another whose only term was switched off
    officer = make_officer()
    off = lexicon(officer, ("phrase", "guarantee", ""), name="Off")
    sv.supervision_lexicon_set_active(actor=officer, lexicon=off, active=False)
    kept = lexicon(officer, ("phrase", "off the record", ""), name="Kept")
    sv.supervision_term_remove(actor=officer, term=kept.terms.get())
    sender = make_user()
    message_post(sender=sender, room=make_room(owner=sender), text="guarantee, off the record")

    # when a run matches
    run = supervision_run()

    # then it matched with no term and flagged nothing; the terms are kept, switched off
    assert (run.terms, run.flagged) == (0, 0)
    assert SupervisionTerm.objects.count() == 2
    assert not SupervisionTerm.objects.get(lexicon=kept).active


def test_an_item_shows_the_revision_it_flagged_after_an_edit_and_purged_after_a_purge() -> None:
    # given a flagged item whose message was then edited
    item, message, sender = flagged_item("we guarantee it")
    message_edit(actor=sender, message=message, text="we hope so")
    reviewer = make_officer()

    # when the reviewer opens it, then they read the text that was flagged, and that it
    # was edited since
    opened = supervision_item_open(officer=reviewer, item=item)
    assert (opened.status, opened.text, opened.current_revision) == ("ok", "we guarantee it", 1)
    assert [h.fragment for h in opened.hits] == ["guarantee"]

    # when the message is gone (as a retention purge leaves it: no row, a tombstone)
    Message.objects.filter(pk=message.pk).delete()
    gone = supervision_item_open(officer=reviewer, item=item)

    # then the item says so, with no text
    assert (gone.status, gone.text, gone.hits) == ("purged", None, [])


# --- the reviewers' notes are sealed ------------------------------------------------------


def test_a_note_is_sealed_under_the_epoch_key_and_audited_by_its_length_only() -> None:
    # given a flagged item and two reviewers
    item, _, _ = flagged_item()
    first, second = make_officer(), make_officer()
    note, reason = "he wrote: we GUARANTEE 20%", "desk head spoke to him"
    seq = last_seq()

    # when one escalates it with a note and the other closes it with a reason
    supervision_item_escalate(actor=first, item=item, note=note)
    supervision_item_close(actor=second, item=item, reason=reason)

    # then the item holds only ciphertexts
    item.refresh_from_db()
    for sealed, text in ((item.escalation_note_sealed, note), (item.close_reason_sealed, reason)):
        assert bytes(sealed)
        assert text.encode() not in bytes(sealed)
    # and each key use and decision is on the record, saying a note was given and its
    # length, never its text
    assert events_since(seq) == [
        "key.compliance.used",
        "supervision.item.escalated",
        "key.compliance.used",
        "supervision.item.closed",
    ]
    escalated = AuditEvent.objects.get(seq__gt=seq, action="supervision.item.escalated")
    closed = AuditEvent.objects.get(seq__gt=seq, action="supervision.item.closed")
    assert escalated.extra["note_given"] is True
    assert escalated.extra["note_length"] == len(note)
    assert closed.extra["note_length"] == len(reason)
    for event in AuditEvent.objects.filter(seq__gt=seq):
        assert "GUARANTEE" not in str(event.extra)
        assert "desk head" not in str(event.extra)


def test_a_note_moved_to_another_field_or_item_does_not_open() -> None:
    # given two flagged posts, one escalated with a note
    lexicon(make_officer(), ("phrase", "guarantee", ""))
    sender = make_user()
    room = make_room(owner=sender)
    posts = [message_post(sender=sender, room=room, text=f"guarantee {n}") for n in (1, 2)]
    item, other = (SupervisionItem.objects.get(message_id=p.pk) for p in posts)
    supervision_item_escalate(actor=make_officer(), item=item, note="promise of returns")
    item.refresh_from_db()
    sealed = bytes(item.escalation_note_sealed)

    # when an insider copies the note's ciphertext into the other field and the other item
    SupervisionItem.objects.filter(pk=item.pk).update(close_reason_sealed=sealed)
    SupervisionItem.objects.filter(pk=other.pk).update(
        state="escalated", escalated_by=make_officer(), escalation_note_sealed=sealed
    )
    item.refresh_from_db()
    other.refresh_from_db()
    reviewer = make_officer()

    # then neither copy opens, and the page says so
    assert supervision_item_open(officer=reviewer, item=item).close_reason == OpenedNote(
        None, "the note can no longer be read: it failed its integrity check"
    )
    assert supervision_item_open(officer=reviewer, item=other).escalation_note == OpenedNote(
        None, "the note can no longer be read: it failed its integrity check"
    )
    # and the original still opens
    assert supervision_item_open(officer=reviewer, item=item).escalation_note == OpenedNote(
        "promise of returns"
    )


def _shred(item: SupervisionItem) -> None:
    epoch = RoomEpoch.objects.get(room_id=item.room_id, number=item.epoch)
    epoch_key_destroy(epoch=epoch)
    clear_key_caches()


def test_a_shredded_epoch_takes_its_notes_with_it() -> None:
    # given an escalated item whose epoch retention then shredded
    item, _, _ = flagged_item()
    supervision_item_escalate(actor=make_officer(), item=item, note="promise of returns")
    _shred(item)
    reviewer = make_officer()

    # when a supervisor opens it, then the note is said to be unreadable, and why
    item.refresh_from_db()
    opened = supervision_item_open(officer=reviewer, item=item)
    assert opened.escalation_note == OpenedNote(None, NOTE_SHREDDED)
    assert opened.status == "shredded"

    # when it is closed after the shred, then the decision stands, its reason is sealed
    # under no surviving key, and the event says the note cannot be read
    seq = last_seq()
    supervision_item_close(actor=reviewer, item=item, reason="message destroyed")
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.CLOSED
    assert b"destroyed" not in bytes(item.close_reason_sealed)
    assert events_since(seq) == ["supervision.item.closed"]
    assert AuditEvent.objects.get(seq=seq + 1).extra["note_readable"] is False
    closed = supervision_item_open(officer=make_officer(), item=item)
    assert closed.close_reason == OpenedNote(None, NOTE_SHREDDED)


def test_the_database_refuses_a_decision_without_a_sealed_note() -> None:
    # given a pending item
    item, _, _ = flagged_item()

    # when a write bypasses the service and escalates it without a note, then the
    # database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        SupervisionItem.objects.filter(pk=item.pk).update(
            state="escalated", escalated_by=make_officer(), escalated_at=timezone.now()
        )
    item.refresh_from_db()
    assert item.state == SupervisionItem.State.PENDING


# --- the posting path's cache ------------------------------------------------------------


def _version_check_due() -> None:
    """As if ``VERSION_CHECK_SECONDS`` passed since this process last read the version."""
    cached = sv._posted
    assert cached is not None
    sv._posted = replace(cached, checked_at=cached.checked_at - sv.VERSION_CHECK_SECONDS - 1)


def _supervision_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "compliance_supervision" in q["sql"]]


def test_a_term_added_in_another_process_is_matched_once_the_version_is_read_again() -> None:
    # given a process that matched a post (its matcher cached, with no term)
    officer = make_officer()
    found = lexicon(officer)
    sender = make_user()
    room = make_room(owner=sender)
    message_post(sender=sender, room=room, text="warm up")
    stale = sv._posted

    # when another process adds a term (this one keeps its cache; the version changes)
    supervision_term_add(actor=officer, lexicon=found, kind="phrase", value="guarantee")
    sv._posted = stale

    # then a post within the check interval is matched as before (the documented delay)
    early = message_post(sender=sender, room=room, text="we guarantee it")
    assert not SupervisionItem.objects.filter(message_id=early.pk).exists()
    # and once the interval passed, the changed version reloads the terms: matched
    _version_check_due()
    late = message_post(sender=sender, room=room, text="we guarantee it again")
    assert SupervisionItem.objects.get(message_id=late.pk).reason == "flagged"
    # and the run, which reads the terms afresh, catches up the early one
    supervision_run()
    assert SupervisionItem.objects.filter(message_id=early.pk).exists()


def test_a_rate_set_in_another_process_applies_once_the_version_is_read_again() -> None:
    # given a process that matched a post with no sampling rate
    officer = make_officer()
    sender = make_user()
    room = make_room(owner=sender)
    message_post(sender=sender, room=room, text="warm up")
    stale = sv._posted

    # when another process samples the room at every message
    supervision_sampling_set(actor=officer, rate=10_000, room=room)
    sv._posted = stale
    _version_check_due()

    # then the next post here is sampled
    sampled = message_post(sender=sender, room=room, text="hello")
    assert SupervisionItem.objects.get(message_id=sampled.pk).reason == "sampled"


def test_a_post_issues_no_supervision_query_while_nothing_changed() -> None:
    # given an active lexicon, a sampling rate of 0, and a post that warmed the cache
    officer = make_officer()
    lexicon(officer, ("phrase", "guarantee", ""))
    supervision_sampling_set(actor=officer, rate=0)
    sender = make_user()
    room = make_room(owner=sender)
    message_post(sender=sender, room=room, text="warm up")

    # when another unflagged post is made within the check interval
    with CaptureQueriesContext(connection) as queries:
        message_post(sender=sender, room=room, text="lunch at noon?")

    # then supervision read nothing
    assert _supervision_queries(queries) == []

    # when the interval passed and nothing changed, then one query: the version
    _version_check_due()
    with CaptureQueriesContext(connection) as queries:
        message_post(sender=sender, room=room, text="and tea at four?")
    assert len(_supervision_queries(queries)) == 1
    assert "compliance_supervisionversion" in _supervision_queries(queries)[0]
