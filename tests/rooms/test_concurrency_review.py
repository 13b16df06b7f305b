"""Requests that arrive together, second round: the cases an adversarial review found.

Real threads on PostgreSQL, released together. Where the window between two statements
is what matters, a call is slowed down (``time.sleep``) to hold it open on every run.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.services import user_deactivate
from audit.models import AuditEvent
from rooms import realtime
from rooms.models import Message
from rooms.services import group_members_set, message_delete, message_post
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.concurrency import postgresql_only, run_together
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every broadcast sent after a commit, by name, from any thread."""
    sent: list[tuple[str, dict[str, Any]]] = []
    for name in ("member_added", "member_removed", "message_posted", "room_event"):

        def record(*, _name: str = name, **kwargs: Any) -> None:
            sent.append((_name, kwargs))

        monkeypatch.setattr(realtime, name, record)
    return sent


def _admin_client() -> Client:
    client = Client(raise_request_exception=False)
    sign_in_client(client, grant_role(make_user(), "security_admin"), verified=True)
    return client


def _slowed(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, seconds: float) -> None:
    """Hold the window after ``module.name`` returns open for ``seconds``."""
    real = getattr(module, name)

    def slow(**kwargs: Any) -> Any:
        out = real(**kwargs)
        time.sleep(seconds)
        return out

    monkeypatch.setattr(module, name, slow)


# --- the admin's group page and posts ---------------------------------------------------


@postgresql_only("the group page and a post lock the same room row and the audit chain")
def test_the_group_page_changing_two_people_never_deadlocks_with_a_post(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import rooms.services.messages as messages

    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    # given a group, two people to put into it, and a room the second one is in
    group, _ = Group.objects.get_or_create(name="desk")
    first, second = make_user(), make_user()
    owner = make_room_admin()
    room = make_room(owner=owner, members=(second,))
    client = _admin_client()
    _slowed(monkeypatch, messages, "message_encrypt", 0.6)  # the room is locked here

    # when the admin saves the page while the owner posts in the second person's room
    outcomes = run_together(
        partial(
            client.post, f"/admin/auth/group/{group.pk}/change/", {"members": [first.pk, second.pk]}
        ),
        partial(message_post, sender=owner, room=room, text="hi"),
    )

    # then both went through: nobody waited on a lock after an audit append
    assert outcomes[0].error is None
    assert outcomes[0].value.status_code == 302
    assert outcomes[1].error is None
    assert set(group.user_set.values_list("pk", flat=True)) == {first.pk, second.pk}
    assert Message.objects.filter(room=room).count() == 1


def test_group_members_set_locks_first_and_audits_each_person_last() -> None:
    # given a barrier-free group and three people, one already in it
    group, _ = Group.objects.get_or_create(name="desk")
    staying, leaving, joining = make_user(), make_user(), make_user()
    group.user_set.add(staying, leaving)
    admin = grant_role(make_user(), "security_admin")

    # when one call adds one person and removes another
    violations = group_members_set(actor=admin, group=group, add=[joining], remove=[leaving])

    # then both changes are made and audited once each, with no room in violation
    assert violations == {}
    assert set(group.user_set.values_list("pk", flat=True)) == {staying.pk, joining.pk}
    granted = AuditEvent.objects.filter(action="account.role.granted")
    revoked = AuditEvent.objects.filter(action="account.role.revoked")
    assert [e.target_id for e in granted] == [str(joining.pk)]
    assert [e.target_id for e in revoked] == [str(leaving.pk)]


def test_saving_an_unchanged_group_page_keeps_deactivated_members() -> None:
    # given a group with an active and a deactivated member
    group, _ = Group.objects.get_or_create(name="trading")
    active, gone = make_user(), make_user(is_active=False)
    group.user_set.add(active, gone)
    client = _admin_client()

    # when the admin saves the page as shown (the deactivated member is not listed)
    answer = client.post(f"/admin/auth/group/{group.pk}/change/", {"members": [active.pk]})

    # then nobody left the group and nothing was audited
    assert answer.status_code == 302
    assert set(group.user_set.values_list("pk", flat=True)) == {active.pk, gone.pk}
    assert not AuditEvent.objects.filter(action="account.role.revoked").exists()


# --- a post that starts a new epoch, against row locks then an audit append -------------


@postgresql_only("a reply's insert takes KEY SHARE on its parent after the epoch's audit")
def test_a_reply_starting_an_epoch_and_its_parent_deleted_at_once_never_deadlock(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import rooms.services.messages as messages

    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    # given a message, and a room whose next post starts a new epoch (its cryptoperiod)
    owner, poster = make_room_admin(), make_user()
    room = make_room(owner=owner, members=(poster,))
    parent = message_post(sender=owner, room=room, text="parent")
    settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1
    _slowed(monkeypatch, messages, "message_encrypt", 0.4)  # the audit chain is held here

    def delete() -> Message:
        time.sleep(0.15)  # the reply holds the audit chain by now
        return message_delete(actor=owner, message=parent)

    # when a reply to the message and the message's deletion arrive together
    outcomes = run_together(
        partial(message_post, sender=poster, room=room, text="reply", parent_id=parent.pk),
        delete,
    )

    # then both went through, one after the other
    assert [o.error for o in outcomes] == [None, None]
    assert Message.objects.get(pk=parent.pk).deleted_at is not None
    assert Message.objects.filter(room=room, parent=parent).count() == 1


@postgresql_only("a mention's insert takes KEY SHARE on the user after the epoch's audit")
def test_a_mention_starting_an_epoch_and_the_person_deactivated_at_once_never_deadlock(
    settings: Any,
) -> None:
    settings.SAFECHAT_POST_RATE_LIMIT = (10_000, 1)
    admin = grant_role(make_user(), "security_admin")
    errors: list[BaseException] = []
    for round_ in range(15):
        # given a room whose next post starts a new epoch, and a member about to go
        owner, poster = make_room_admin(), make_user()
        target = make_user(username=f"target{round_}")
        room = make_room(owner=owner, members=(poster, target), name=f"r{round_}")
        settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1_000_000
        message_post(sender=owner, room=room, text="first")
        settings.SAFECHAT_EPOCH_MAX_MESSAGES = 1

        # when a post mentions them while a security admin deactivates them
        outcomes = run_together(
            partial(message_post, sender=poster, room=room, text=f"@target{round_} look"),
            partial(user_deactivate, actor=admin, user=target),
        )
        errors += [o.error for o in outcomes if o.error is not None]

    # then nothing failed
    assert errors == []
