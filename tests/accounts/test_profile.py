"""Display names: set on the profile page, over the API, when accepting an invitation and
when bootstrapping the first administrator, always by one validation; a change is audited
(fields, never values) and heard by the members of the person's rooms."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client, TestCase

from accounts.models import Invitation, User
from accounts.roles import Role
from accounts.services import api_token_create, user_profile_update
from rooms.models import Room
from safechat import events as event_registry
from safechat.actions import Refused
from safechat.events import room_group
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role, make_totp_device, make_user, sign_in_client
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db

PROFILE = "/accounts/profile/"
ME = "/api/v1/accounts/me/"
NEW_PASSWORD = "another long passphrase 42"
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "Alice\u202eecilA" would read reversed
# What a name may not be: a direction control inside it, or only invisible characters.
DECEIVING = [
    pytest.param(f"Ali{RLO}ce", "bidi_control", id="right-to-left-override"),
    pytest.param("Bob\u2066", "bidi_control", id="left-to-right-isolate"),
    pytest.param("\u200b\u200b", "invisible", id="zero-width-spaces"),
    pytest.param("\u3164", "invisible", id="hangul-filler"),
    # An invisible character inside: "Alice" with a soft hyphen shows as "Alice"
    pytest.param("Al\u00adice", "default_ignorable", id="soft-hyphen-inside"),
    pytest.param("Al\u200bice", "default_ignorable", id="zero-width-space-inside"),
    # A control character: a line break or a terminal's escape in a name others read
    pytest.param("Eve\nAdmin", "control_character", id="line-feed"),
    pytest.param("Eve\x1b[2J", "control_character", id="escape"),
    pytest.param("Eve\x85Admin", "control_character", id="next-line"),
    pytest.param("Eve\u2028Admin", "control_character", id="line-separator"),
    # A username of someone else's in the name: "Alice Martin (@alice) (@eve)" reads as alice
    pytest.param("Martin (@alice)", "at_sign", id="username-marker"),
    pytest.param("Martin (\uff20alice)", "at_sign", id="fullwidth-username-marker"),
    # Combining marks piled on a letter draw over the rows around the name
    pytest.param("Dan" + "\u0301" * 20, "stacked_marks", id="twenty-acute-accents"),
    pytest.param("Dan\u0301\u0300\u0302\u0303\u0304", "stacked_marks", id="five-marks"),
]


@contextlib.contextmanager
def delivered() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """What the services publish, as (group, layer message), once their transaction
    commits."""
    sent: list[tuple[str, dict[str, Any]]] = []
    original = event_registry.deliver
    event_registry.deliver = lambda group, message: sent.append((group, message))
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield sent
    finally:
        event_registry.deliver = original


def verified(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    sign_in_client(client, user, verified=True)
    return client


# --- the service -----------------------------------------------------------------------


def test_a_person_sets_their_name_and_their_rooms_hear_it_without_the_values_recorded() -> None:
    # given a person in two rooms, and a room they are not in
    alice = make_user(username="alice")
    desk, other = make_room(members=(alice,), name="Desk"), make_room(name="Other")
    lounge = make_room(members=(alice,), name="Lounge")

    # when she sets her name (with stray spaces around it)
    with delivered() as sent:
        saved = user_profile_update(actor=alice, first_name="  Alice ", last_name="Martin")

    # then it is saved trimmed, shown as her display name, and recorded by field only
    alice.refresh_from_db()
    assert (alice.first_name, alice.last_name) == ("Alice", "Martin")
    assert saved.display_name() == alice.display_name() == "Alice Martin"
    recorded = events("account.profile.updated")
    assert len(recorded) == 1
    assert recorded[0].extra == {"fields": ["first_name", "last_name"]}
    assert "Alice" not in str(recorded[0].extra)
    assert "Martin" not in str(recorded[0].extra)
    assert recorded[0].actor_id == alice.pk
    # and exactly her rooms hear that her name changed
    assert sorted((group, m["event"], m["user_id"], m["change"]) for group, m in sent) == sorted(
        (room_group(room.pk), "member.updated", alice.pk, "name") for room in (desk, lounge)
    )
    assert room_group(other.pk) not in {group for group, _ in sent}


def test_one_field_changes_alone_and_an_empty_one_clears_it() -> None:
    alice = make_user(first_name="Alice", last_name="Martin")

    user_profile_update(actor=alice, last_name="")

    alice.refresh_from_db()
    assert (alice.first_name, alice.last_name) == ("Alice", "")
    assert events("account.profile.updated")[0].extra == {"fields": ["last_name"]}


def test_a_change_that_changes_nothing_writes_records_and_publishes_nothing() -> None:
    alice = make_user(first_name="Alice", last_name="Martin")
    make_room(members=(alice,))

    with delivered() as sent:
        user_profile_update(actor=alice, first_name="Alice ", last_name=None)

    assert sent == []
    assert not events("account.profile.updated")


@pytest.mark.parametrize(("name", "code"), DECEIVING)
def test_a_deceiving_name_is_refused_by_field_and_nothing_is_written(name: str, code: str) -> None:
    # given a person in a room
    alice = make_user(first_name="Alice", last_name="Martin")
    make_room(members=(alice,))

    # when she tries a deceiving last name
    with delivered() as sent, pytest.raises(ValidationError) as refused:
        user_profile_update(actor=alice, first_name="Eve", last_name=name)

    # then the refusal names the field and the rule, and nothing changed or was told
    assert {
        field: [e.code for e in errors] for field, errors in refused.value.error_dict.items()
    } == {"last_name": [code]}
    alice.refresh_from_db()
    assert (alice.first_name, alice.last_name) == ("Alice", "Martin")
    assert not events("account.profile.updated")
    assert sent == []


@pytest.mark.parametrize(
    ("value", "code"),
    [("x" * 65, "max_length"), ("Al\x00ice", "null_characters_not_allowed")],
)
def test_a_name_too_long_or_with_a_nul_is_refused(value: str, code: str) -> None:
    alice = make_user(first_name="Alice")

    with pytest.raises(ValidationError) as refused:
        user_profile_update(actor=alice, first_name=value)

    assert [e.code for e in refused.value.error_dict["first_name"]] == [code]
    alice.refresh_from_db()
    assert alice.first_name == "Alice"


def test_a_name_part_of_64_characters_is_the_longest_allowed_on_every_edge() -> None:
    # given Alice, and a first name of 64 characters
    alice = make_user(first_name="Alice")
    longest = "W" * 64

    # when she sets it, then one character more on the profile page and the API
    user_profile_update(actor=alice, first_name=longest)
    page = verified(alice).post(PROFILE, {"first_name": longest + "W", "last_name": ""})
    api = verified(alice).patch(ME, {"last_name": "x" * 65}, content_type="application/json")

    # then the 64 are kept and the 65 refused on each edge, nothing else written
    alice.refresh_from_db()
    assert (alice.first_name, alice.last_name) == (longest, "")
    assert page.status_code == 400
    assert api.status_code == 400


def test_a_name_in_another_script_or_with_an_emoji_is_a_name() -> None:
    alice = make_user()

    user_profile_update(actor=alice, first_name="\u05e9\u05e8\u05d4", last_name="\U0001f4c8")

    alice.refresh_from_db()
    assert alice.display_name() == "\u05e9\u05e8\u05d4 \U0001f4c8"


def test_an_account_deactivated_meanwhile_changes_nothing_and_the_refusal_is_recorded() -> None:
    # given a person whose account was deactivated after their request began
    alice = make_user(first_name="Alice")
    make_room(members=(alice,))
    User.objects.filter(pk=alice.pk).update(is_active=False)

    # when the change arrives
    with delivered() as sent, pytest.raises(Refused):
        user_profile_update(actor=alice, first_name="Eve")

    # then nothing changed, nothing was told, and the refusal is on the record
    assert User.objects.get(pk=alice.pk).first_name == "Alice"
    assert sent == []
    assert not events("account.profile.updated")
    refused = events("account.profile.refused")
    assert [(e.actor_id, e.extra) for e in refused] == [(alice.pk, {"reason": "inactive"})]


# --- the portal ------------------------------------------------------------------------


def test_the_profile_page_is_in_the_navigation_and_saves_the_name(user: User) -> None:
    client = verified(user)

    # given the chat page, whose navigation links the profile
    chat = client.get("/rooms/").content.decode()
    assert f'href="{PROFILE}"' in chat

    # when the person opens the profile and saves a name
    page = client.get(PROFILE)
    saved = client.post(PROFILE, {"first_name": "Alice", "last_name": "Martin"})

    # then it is saved and shown back to them
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    assert saved.status_code == 302
    assert saved["Location"] == PROFILE
    user.refresh_from_db()
    assert user.display_name() == "Alice Martin"
    shown = client.get(PROFILE).content.decode()
    assert "Alice Martin" in shown
    assert 'value="Martin"' in shown
    assert events("account.profile.updated")[0].channel == "portal"


@pytest.mark.parametrize(("name", "code"), DECEIVING)
def test_the_profile_page_refuses_a_deceiving_name_beside_its_field(
    user: User, name: str, code: str
) -> None:
    client = verified(user)

    response = client.post(PROFILE, {"first_name": name, "last_name": "Martin"})

    assert response.status_code == 400
    form = response.context["form"]
    assert [e.code for e in form.errors.as_data()["first_name"]] == [code]
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("", "")
    assert not events("account.profile.updated")


def test_the_profile_page_needs_a_verified_session(user: User) -> None:
    make_totp_device(user)
    client = Client()
    sign_in_client(client, user, verified=False)

    response = client.post(PROFILE, {"first_name": "Mallory"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/")
    user.refresh_from_db()
    assert user.first_name == ""


def test_the_users_page_shows_display_names_beside_usernames() -> None:
    admin = grant_role(make_user(username="sec"), Role.SECURITY_ADMIN)
    make_user(username="alice", first_name="Alice", last_name="Martin")

    page = verified(admin).get("/accounts/admin/users/").content.decode()

    assert re.search(r"<bdi>Alice Martin</bdi>\s*<span class=\"muted\">@<bdi>alice</bdi>", page)


# --- the API ---------------------------------------------------------------------------


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_reads_and_changes_ones_own_name(user: User) -> None:
    client = verified(user)
    make_room(members=(user,))

    # when the person reads and then changes their name through the API
    before = client.get(ME)
    with delivered() as sent:
        changed = client.patch(ME, {"first_name": "Alice"}, content_type="application/json")

    # then they see their profile, then the new name, recorded as coming from the API
    assert before.status_code == 200
    assert before.json() == {
        "id": user.pk,
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "display_name": user.username,
    }
    assert changed.status_code == 200
    assert changed.json()["display_name"] == "Alice"
    assert changed["Cache-Control"] == "no-store"
    user.refresh_from_db()
    assert user.first_name == "Alice"
    assert [e.channel for e in events("account.profile.updated")] == ["api"]
    assert [m["change"] for _, m in sent] == ["name"]


@pytest.mark.parametrize(("name", "code"), DECEIVING)
def test_the_api_refuses_a_deceiving_name_with_a_pointer_to_the_field(
    user: User, name: str, code: str
) -> None:
    client = verified(user)

    response = client.patch(
        ME, {"first_name": "Eve", "last_name": name}, content_type="application/json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"] == [
        {"pointer": "#/last_name", "code": code, "detail": body["errors"][0]["detail"]}
    ]
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("", "")
    assert not events("account.profile.updated")


@pytest.mark.parametrize(
    "body",
    [{"first_name": 5}, {"first_name": None}, {"last_name": ["Martin"]}, {"first_name": "x" * 65}],
)
def test_the_api_refuses_a_name_of_the_wrong_shape(user: User, body: dict[str, Any]) -> None:
    response = verified(user).patch(ME, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["pointer"] in {"#/first_name", "#/last_name"}
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("", "")
    assert not events("account.profile.updated")


def test_a_read_token_reads_the_profile_but_only_a_write_token_changes_it(user: User) -> None:
    _, reader = api_token_create(actor=user, name="reader", scope="read")
    _, writer = api_token_create(actor=user, name="writer", scope="write")
    client = Client()

    read = client.get(ME, headers=bearer(reader))
    refused = client.patch(
        ME, {"first_name": "Mallory"}, headers=bearer(reader), content_type="application/json"
    )
    assert read.status_code == 200
    assert refused.status_code == 403
    assert User.objects.get(pk=user.pk).first_name == ""
    assert not events("account.profile.updated")

    written = client.patch(
        ME, {"first_name": "Alice"}, headers=bearer(writer), content_type="application/json"
    )
    assert written.status_code == 200
    assert User.objects.get(pk=user.pk).first_name == "Alice"


def test_the_api_refuses_anonymous_unverified_and_csrf_less_changes(user: User) -> None:
    anonymous = Client().patch(ME, {"first_name": "Mallory"}, content_type="application/json")
    unverified = Client()
    sign_in_client(unverified, user, verified=False)
    half = unverified.patch(ME, {"first_name": "Mallory"}, content_type="application/json")
    no_csrf = verified(user, enforce_csrf_checks=True).patch(
        ME, {"first_name": "Mallory"}, content_type="application/json"
    )

    assert anonymous.status_code == 401
    assert half.status_code == 403
    assert no_csrf.status_code == 403
    assert no_csrf.json()["detail"].startswith("CSRF Failed")
    assert User.objects.get(pk=user.pk).first_name == ""
    assert not events("account.profile.updated")


# --- accounts created with a name --------------------------------------------------------


def _invitation_path(admin_client: Client, capture: Any) -> str:
    with capture(execute=True):
        admin_client.post("/accounts/admin/users/", {"email": "new@bank.example", "role": "member"})
    found = re.search(r"(/accounts/invitation/[^/]+/)", str(mail.outbox[-1].body))
    assert found is not None
    return found.group(1)


def test_an_invitation_is_accepted_with_a_name(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks)
    client = Client()
    assert 'name="first_name"' in client.get(path).content.decode()

    created = client.post(
        path,
        {"first_name": " Nina", "last_name": "Okafor", "username": "nina",
         "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )  # fmt: skip

    assert created.status_code == 302
    nina = User.objects.get(username="nina")
    assert nina.display_name() == "Nina Okafor"


@pytest.mark.parametrize(("name", "code"), DECEIVING)
def test_an_invitation_with_a_deceiving_name_creates_nothing_and_stays_usable(
    admin_client: Client, django_capture_on_commit_callbacks: Any, name: str, code: str
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks)
    form = {"first_name": name, "username": "nina", "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD}  # fmt: skip

    refused = Client().post(path, form)

    assert refused.status_code == 400
    assert [e.code for e in refused.context["form"].errors.as_data()["first_name"]] == [code]
    assert not User.objects.filter(username="nina").exists()
    assert Invitation.objects.get().accepted_at is None
    assert not events("account.created")
    # and the same link still creates the account with a name one can see
    accepted = Client().post(path, {**form, "first_name": "Nina"})
    assert accepted.status_code == 302
    assert User.objects.get(username="nina").first_name == "Nina"


def _bootstrap_path() -> str:
    out = StringIO()
    call_command("bootstrap_admin", stdout=out)
    found = re.search(r"(/accounts/bootstrap/[^/]+/)", out.getvalue())
    assert found is not None
    return found.group(1)


def test_the_first_administrator_gives_a_name_at_bootstrap() -> None:
    path = _bootstrap_path()
    form = {"first_name": "Sam", "last_name": "Ng", "username": "sam",
            "email": "sam@bank.example", "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD}  # fmt: skip

    created = Client().post(path, form)

    assert created.status_code == 302
    sam = User.objects.get(username="sam")
    assert sam.display_name() == "Sam Ng"
    assert sam.has_perm("accounts.manage_users")


def test_a_deceiving_name_at_bootstrap_creates_nothing() -> None:
    path = _bootstrap_path()
    form = {"first_name": "Sam", "last_name": f"Ng{RLO}", "username": "sam",
            "email": "sam@bank.example", "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD}  # fmt: skip

    refused = Client().post(path, form)

    assert refused.status_code == 400
    assert [e.code for e in refused.context["form"].errors.as_data()["last_name"]] == [
        "bidi_control"
    ]
    assert not User.objects.filter(username="sam").exists()
    assert not events("auth.bootstrap.used")


def test_rooms_are_only_told_about_the_person_renamed() -> None:
    # given two people sharing a room
    alice, bob = make_user(username="alice"), make_user(username="bob")
    room: Room = make_room(members=(alice, bob))

    # when Bob renames himself
    with delivered() as sent:
        user_profile_update(actor=bob, first_name="Robert")

    # then the room hears about Bob, not Alice
    assert [(g, m["user_id"]) for g, m in sent] == [(room_group(room.pk), bob.pk)]
