"""Usernames cannot deceive: one canonical form (RFC 8265) on every edge, and no two
accounts that look alike (UTS #39 skeleton), held by a database constraint."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from accounts.models import Invitation, User
from accounts.selectors import person_active_get
from safechat.unicode_text import confusable_skeleton
from tests.accounts.conftest import PASSWORD
from tests.accounts.factories import make_totp_device, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another long passphrase 42"
CYRILLIC_A = "\u0430"


def _invitation_path(admin_client: Client, capture: Any, email: str) -> str:
    with capture(execute=True):
        admin_client.post("/accounts/admin/users/", {"email": email, "role": "member"})
    found = re.search(r"(/accounts/invitation/[^/]+/)", str(mail.outbox[-1].body))
    assert found is not None
    return found.group(1)


def _accept(path: str, username: str) -> Any:
    return Client().post(
        path, {"username": username, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )


def test_a_new_account_is_stored_under_its_canonical_username(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "as@bank.example")

    response = _accept(path, "Alice.Smith")

    assert response.status_code == 302
    user = User.objects.get(email="as@bank.example")
    assert user.username == "alice.smith"
    # m looks like rn: "alice.srnith" would be refused beside it
    assert user.username_skeleton == confusable_skeleton("alice.srnith")


@pytest.mark.parametrize(
    "look_alike",
    ["ALICE", "a1ice", "\uff41lice"],
    ids=["case", "digit-one", "fullwidth-a"],
)
def test_a_look_alike_of_an_existing_username_is_refused_and_nothing_is_made(
    admin_client: Client, django_capture_on_commit_callbacks: Any, look_alike: str
) -> None:
    make_user(username="alice")
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "x@bank.example")
    before = User.objects.count()

    response = _accept(path, look_alike)

    assert response.status_code == 400
    assert "taken" in response.content.decode() or "similar" in response.content.decode()
    assert User.objects.count() == before
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize(
    "look_alike", ["b0b.smith", "B0B.Smith", "bob.srnith", "BOB.SMITH"], ids=str.lower
)
def test_a_zero_for_an_o_is_a_look_alike_whatever_the_case(
    admin_client: Client, django_capture_on_commit_callbacks: Any, look_alike: str
) -> None:
    # given bob.smith (confusables.txt maps 0 to the capital O, so only the skeleton of the
    # case-folded skeleton makes "b0b" meet "bob")
    make_user(username="bob.smith")
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "b@bank.example")
    before = User.objects.count()

    # when someone accepts an invitation as a look-alike
    response = _accept(path, look_alike)

    # then it is refused and nothing is made
    assert response.status_code == 400
    assert "taken" in response.content.decode() or "similar" in response.content.decode()
    assert User.objects.count() == before
    assert Invitation.objects.get().accepted_at is None


def test_b0b_is_refused_by_the_database_beside_bob() -> None:
    make_user(username="bob.smith")

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="b0b.smith")

    assert not User.objects.filter(username="b0b.smith").exists()


@pytest.mark.parametrize("username", ["al ice", "\u202ealice", "alice\u200b", ""])
def test_a_username_the_profile_refuses_is_a_clear_error(
    admin_client: Client, django_capture_on_commit_callbacks: Any, username: str
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "y@bank.example")
    before = User.objects.count()

    response = _accept(path, username)

    assert response.status_code == 400
    assert 'class="error' in response.content.decode()
    assert User.objects.count() == before


def test_the_database_refuses_a_look_alike_that_skips_validation() -> None:
    # Given an account, when a second one that looks like it is saved without clean()
    # (a race between two requests that both passed validation looks the same to it)
    make_user(username="alice")

    with pytest.raises(IntegrityError), transaction.atomic():
        User(username=f"{CYRILLIC_A}lice", email="z@bank.example").save()

    assert User.objects.filter(username__endswith="lice").count() == 1


def test_a_username_typed_in_another_case_signs_in() -> None:
    make_totp_device(make_user(username="alice.smith"))

    response = Client().post(
        "/accounts/sign-in/", {"username": "Alice.Smith", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/")


def test_pickers_find_a_person_by_any_case_of_their_name() -> None:
    alice = make_user(username="alice")

    assert person_active_get(username="ALICE") == alice
    assert person_active_get(username=f"{CYRILLIC_A}lice") is None


def test_the_upgrade_marks_an_older_account_that_only_now_looks_alike() -> None:
    # given two accounts made before the case-insensitive skeleton: "bob.smith" and then
    # "b0b.smith", each with the plain skeleton it was given then
    import importlib

    from django.apps import apps

    upgrade = importlib.import_module("accounts.migrations.0016_username_skeleton_any_case")
    bob, b0b = User.objects.bulk_create(
        [
            User(username="bob.smith", username_skeleton=confusable_skeleton("bob.smith")),
            User(username="b0b.smith", username_skeleton=confusable_skeleton("b0b.smith")),
        ]
    )
    bob, b0b = User.objects.get(username="bob.smith"), User.objects.get(username="b0b.smith")

    # when the upgrade runs
    upgrade.case_insensitive_skeletons(apps, None)

    # then the first keeps the skeleton both now share, the later one is marked with its
    # id (to be renamed), and the constraint holds for both
    bob.refresh_from_db()
    b0b.refresh_from_db()
    assert bob.username_skeleton == "bob.srnith"
    assert b0b.username_skeleton == f"bob.srnith #{b0b.pk}"


@pytest.mark.parametrize(
    "username",
    ["\u0431ob.smith", f"{CYRILLIC_A}lice", "bob.\u03c3mith"],
    ids=["cyrillic-be", "cyrillic-a", "greek-sigma"],
)
def test_a_username_mixing_scripts_is_refused_with_the_reason_and_nothing_is_made(
    admin_client: Client, django_capture_on_commit_callbacks: Any, username: str
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "m@bank.example")
    before = User.objects.count()

    response = _accept(path, username)

    assert response.status_code == 400
    assert "may not mix letters of different scripts" in response.content.decode()
    assert User.objects.count() == before
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("bob.smith.", "may not end with a full stop"),
        (".", "needs a letter or a digit"),
        ("@-_", "needs a letter or a digit"),
    ],
    ids=["trailing-full-stop", "only-a-full-stop", "only-punctuation"],
)
def test_a_username_that_cannot_be_mentioned_as_itself_is_refused_and_nothing_is_made(
    admin_client: Client, django_capture_on_commit_callbacks: Any, username: str, reason: str
) -> None:
    # given bob.smith, whom "@bob.smith." at the end of a sentence mentions (the full stop
    # is the sentence's)
    make_user(username="bob.smith")
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "d@bank.example")
    before = User.objects.count()

    # when an invitee picks a username that no mention could name as itself
    response = _accept(path, username)

    # then it is refused with the reason, and nothing is made
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert User.objects.count() == before
    assert Invitation.objects.get().accepted_at is None


@pytest.mark.parametrize(
    "username",
    ["\u0430\u043b\u0438\u0441\u0430", "\u5c71\u7530.taro", "\uae40.kim", "j\u00fcrgen"],
    ids=["cyrillic", "han-latin", "hangul-latin", "latin-umlaut"],
)
def test_a_username_in_one_script_or_latin_with_cjk_is_welcome(
    admin_client: Client, django_capture_on_commit_callbacks: Any, username: str
) -> None:
    path = _invitation_path(admin_client, django_capture_on_commit_callbacks, "w@bank.example")

    response = _accept(path, username)

    assert response.status_code == 302
    assert User.objects.filter(username=username).exists()


def test_an_account_made_before_the_script_rule_keeps_its_name_and_stays_editable() -> None:
    # given an account whose username mixes scripts, made before the rule (no clean())
    old = make_user(username="\u0431ob.smith")

    # when it is validated again, unchanged, as the admin's form does on any change
    old.first_name = "Bob"
    old.full_clean(exclude=["password", "email"])

    # then it passes; a rename to another mixed name does not
    old.username = "\u0431ob.smyth"
    with pytest.raises(ValidationError) as refused:
        old.full_clean(exclude=["password", "email"])
    assert refused.value.error_dict["username"][0].code == "username_mixed_scripts"
