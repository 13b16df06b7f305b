"""Mentions: how they are rendered (safely, by canonical username), who is notified, and
the list of messages that mention me (access and the history rule derived again)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import cache
from django.test import Client

from rooms.markdown import MentionTarget, render_markdown
from rooms.models import Mention
from rooms.selectors import mentions_for_user, message_view
from rooms.services import (
    membership_add,
    membership_remove,
    message_delete,
    message_edit,
    message_post,
)
from rooms.wire import message_json, message_rendered
from safechat.events import Event
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()


# --- rendering -----------------------------------------------------------------------------
BOB = {"bob": MentionTarget(7, "Bob Stone")}


def test_a_mention_is_matched_by_its_canonical_username_and_shows_the_display_name() -> None:
    # given "@BOB" typed in capitals, then a full stop that belongs to the sentence
    html = render_markdown("ask @BOB.", mentions=BOB)

    # then it is bob's mention, shown by his name, his username as tooltip
    assert html == (
        '<p>ask <span class="mention" data-user-id="7" title="@bob">@Bob Stone (bob)</span>.</p>\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        "mail bob@bob.example",  # an e-mail address
        "`@bob` in code",  # code is code
        "@bobby is someone else",  # another name that starts alike
        "@@bob",
    ],
)
def test_only_a_named_member_standing_alone_is_marked_up(text: str) -> None:
    assert "mention" not in render_markdown(text, mentions=BOB)


def test_nothing_is_a_mention_without_the_members_it_names() -> None:
    assert "span" not in render_markdown("hi @bob")


def test_a_mention_cannot_carry_markup_in_either_direction() -> None:
    # given a display name with markup (labels refuse it; the renderer must not rely on that)
    targets = {"bob": MentionTarget(7, '"><img src=x onerror=alert(1)>')}

    # when it is mentioned, and someone types the markup of a mention themself
    named = render_markdown("@bob", mentions=targets)
    forged = render_markdown(
        '<span class="mention mention-me" data-user-id="1" onclick="x()">@root</span>',
        mentions=targets,
    )

    # then the name is text, and the typed markup is text too
    assert "<img" not in named
    assert "&lt;img" in named
    assert "onerror" in named
    assert named.startswith('<p><span class="mention" data-user-id="7" title="@bob">')
    assert "<span" not in forged
    assert "&lt;span" in forged


def test_a_posted_mention_is_on_the_wire_with_the_senders_display_name() -> None:
    # given alice (with a name) mentioning bob and someone not in the room
    alice = make_user(username="alice", first_name="Alice", last_name="Martin")
    bob = make_user(username="bob", first_name="Bob", last_name="Stone")
    make_user(username="carol")
    room = make_room(owner=alice, members=(bob,))

    # when she posts
    message = message_post(sender=alice, room=room, text="@Bob and @carol, see this")
    sent = message_json(message_view(reader=bob, message=message))

    # then only bob, a member, is mentioned: a row, the wire's ids and the markup
    assert sent["sender"] == "alice"
    assert sent["sender_name"] == "Alice Martin"
    assert sent["mentions"] == [bob.pk]
    assert list(Mention.objects.values_list("user_id", flat=True)) == [bob.pk]
    assert (
        f'<span class="mention" data-user-id="{bob.pk}" title="@bob">@Bob Stone (bob)</span>'
        in (sent["html"] or "")
    )
    assert "@carol" in (sent["html"] or "")


@pytest.mark.parametrize(
    "text",
    [
        "run `@bob --force` first",
        "the log:\n\n```\n@bob rejected\n```",
        "    @bob indented code",
        "[the ticket](https://tracker.example/@bob)",
    ],
    ids=["code-span", "fenced-code", "indented-code", "link-address"],
)
def test_a_name_the_page_shows_as_text_is_no_mention(text: str) -> None:
    # given bob in the room, and a message where "@bob" is code or part of a link address,
    # which the page shows as text, not as a mention
    alice, bob = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=alice, members=(bob,))

    # when alice posts it
    with mock.patch("rooms.services.messages.publish") as published:
        message = message_post(sender=alice, room=room, text=text)

    # then bob is not mentioned: no row, no notice, none on the wire, no markup
    assert not Mention.objects.exists()
    assert not [c for c in published.call_args_list if c.args[0] is Event.MENTION]
    view = message_view(reader=bob, message=message)
    assert message_json(view)["mentions"] == []
    assert "mention" not in (message_json(view)["html"] or "")


def test_the_page_marks_the_readers_own_mentions_only() -> None:
    alice, bob = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=alice, members=(bob,))
    message = message_post(sender=alice, room=room, text="@bob")
    view = message_view(reader=bob, message=message)

    assert "mention-me" in (message_rendered(view, reader_id=bob.pk).html or "")
    assert "mention-me" not in (message_rendered(view, reader_id=alice.pk).html or "")
    assert "mention-me" not in (message_json(view)["html"] or "")  # shared by every reader


def test_an_edit_makes_the_mentions_follow_the_text_and_notifies_the_newly_named_only() -> None:
    alice, bob, carol = make_user(username="alice"), make_user(), make_user()
    room = make_room(owner=alice, members=(bob, carol))
    message = message_post(sender=alice, room=room, text=f"@{bob.username}")

    with mock.patch("rooms.services.messages.publish") as published:
        message_edit(actor=alice, message=message, text=f"@{bob.username} and @{carol.username}")
        message_edit(actor=alice, message=message, text=f"sorry, just @{carol.username}")

    assert list(Mention.objects.values_list("user_id", flat=True)) == [carol.pk]
    mentions = [c for c in published.call_args_list if c.args[0] is Event.MENTION]
    assert [c.kwargs["to_user"] for c in mentions] == [carol.pk]


def test_an_edit_naming_a_newcomer_in_a_message_from_before_they_joined_notifies_nobody() -> None:
    # given a message posted in a room that hides history, then bob added to the room
    alice, bob = make_user(username="alice"), make_user(username="bob")
    room = make_room(owner=alice, history_visible=False)
    message = message_post(sender=alice, room=room, text="the old figures")
    membership_add(actor=alice, room=room, user=bob)

    # when alice edits that message to name bob, who may not read it
    with mock.patch("rooms.services.messages.publish") as published:
        message_edit(actor=alice, message=message, text="the old figures, @bob")

    # then bob is not mentioned: no row, no notice, nothing listed
    assert not Mention.objects.filter(user=bob).exists()
    assert not [c for c in published.call_args_list if c.args[0] is Event.MENTION]
    assert mentions_for_user(user=bob) == []


# --- the list of my mentions -----------------------------------------------------------------
def test_my_mentions_are_listed_newest_first_across_my_rooms() -> None:
    # given bob mentioned in two rooms, and someone else mentioned too
    alice, bob, carol = make_user(), make_user(username="bob"), make_user(username="carol")
    desk = make_room(owner=alice, members=(bob, carol), name="Desk")
    fx = make_room(owner=carol, members=(bob,), name="FX")
    first = message_post(sender=alice, room=desk, text="@bob first")
    message_post(sender=alice, room=desk, text="@carol not bob")
    message_post(sender=alice, room=desk, text="no mention")
    second = message_post(sender=carol, room=fx, text="@bob second")

    # when bob lists his mentions
    found = mentions_for_user(user=bob)

    # then his two, newest first, with their text for him
    assert [(m.id, m.text) for m in found] == [(second.pk, "@bob second"), (first.pk, "@bob first")]
    assert [m.id for m in mentions_for_user(user=bob, before=second.pk)] == [first.pk]


def test_a_mention_in_a_room_i_left_or_a_deleted_message_is_not_listed() -> None:
    alice, bob = make_user(), make_user(username="bob")
    left = make_room(owner=alice, members=(bob,), name="Left")
    kept = make_room(owner=alice, members=(bob,), name="Kept")
    message_post(sender=alice, room=left, text="@bob in a room you will leave")
    deleted = message_post(sender=alice, room=kept, text="@bob deleted")
    shown = message_post(sender=alice, room=kept, text="@bob kept")

    membership_remove(actor=bob, room=left, member=bob)
    message_delete(actor=alice, message=deleted)

    assert [m.id for m in mentions_for_user(user=bob)] == [shown.pk]
    assert Mention.objects.filter(user=bob).count() == 3  # the rows stay; access decides


def test_a_mention_from_before_i_rejoined_a_room_hiding_history_is_not_listed() -> None:
    # given bob mentioned, then removed, then added again to a room that hides history
    alice, bob = make_user(), make_user(username="bob")
    room = make_room(owner=alice, members=(bob,), history_visible=False)
    message_post(sender=alice, room=room, text="@bob before")
    membership_remove(actor=alice, room=room, member=bob)
    membership_add(actor=alice, room=room, user=bob)
    after = message_post(sender=alice, room=room, text="@bob after")

    # then only the mention since he came back is listed
    assert [m.id for m in mentions_for_user(user=bob)] == [after.pk]


def test_the_mentions_page_and_api_list_mine_and_nobody_elses() -> None:
    alice = make_user(username="alice", first_name="Alice", last_name="Martin")
    bob, carol = make_user(username="bob"), make_user(username="carol")
    room = make_room(owner=alice, members=(bob, carol), name="Rates desk")
    mine = message_post(sender=alice, room=room, text="@bob **look**")
    message_post(sender=alice, room=room, text="@carol only")
    client = Client()
    sign_in_client(client, bob, verified=True)

    page = client.get("/rooms/mentions/")
    api = client.get("/api/v1/mentions/")

    assert page.status_code == 200
    assert api.status_code == 200
    html = page.content.decode()
    assert f'href="/rooms/?room={room.pk}#message-{mine.pk}"' in html
    assert f'<span class="mention mention-me" data-user-id="{bob.pk}"' in html
    assert "Alice Martin" in html
    assert "<strong>look</strong>" in html
    assert "carol" not in html
    body = api.json()
    assert [m["id"] for m in body["results"]] == [mine.pk]
    assert body["results"][0]["mentions"] == [bob.pk]
    assert body["next_before"] is None


def test_the_mentions_page_pages_back_and_ignores_a_cursor_that_is_no_number() -> None:
    alice, bob = make_user(), make_user(username="bob")
    room = make_room(owner=alice, members=(bob,))
    older = message_post(sender=alice, room=room, text="@bob older")
    newer = message_post(sender=alice, room=room, text="@bob newer")
    client = Client()
    sign_in_client(client, bob, verified=True)

    paged = client.get("/rooms/mentions/", {"before": newer.pk}).content.decode()
    odd = client.get("/rooms/mentions/", {"before": "\u00b2"})

    assert f"#message-{older.pk}" in paged
    assert f"#message-{newer.pk}" not in paged
    assert odd.status_code == 200
    assert f"#message-{newer.pk}" in odd.content.decode()
