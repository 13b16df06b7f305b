"""A token minted by a token hangs on it: revoking a token revokes every live token it
minted down the line, a revoked or expired token mints nothing, and a token whose
ancestor is revoked is refused at every use."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from accounts.models import ApiToken, User
from accounts.services import api_token_create, api_token_revoke
from audit.actions import AuditAction
from safechat.actions import Refused
from tests.accounts.conftest import events
from tests.accounts.factories import grant_role, make_user

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/accounts/tokens/"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def mint(secret: str, name: str) -> tuple[int, str]:
    """Mint a token through the API with the token ``secret`` (an admin token, a read token
    for the leaf; its life cut to the parent's): (status, new secret)."""
    answer = Client().post(
        TOKENS, {"name": name, "scope": "admin" if name != "leaf" else "read"},
        headers=bearer(secret), content_type="application/json",
    )  # fmt: skip
    return answer.status_code, answer.json().get("token", "") if answer.status_code == 201 else ""


def reads(secret: str) -> int:
    return Client().get(TOKENS, headers=bearer(secret)).status_code


def test_a_token_minted_through_the_api_records_its_parent(user: User) -> None:
    # given an admin token
    root, secret = api_token_create(actor=user, name="root", scope="admin", days=30)

    # when it mints a token
    status, _child_secret = mint(secret, "child")

    # then the new token names it as its parent
    assert status == 201
    assert ApiToken.objects.get(name="child").parent_id == root.pk


def test_revoking_a_token_revokes_its_line_at_once_each_on_the_record(user: User) -> None:
    # given a line root -> child -> leaf, and an unrelated token
    root, root_secret = api_token_create(actor=user, name="root", scope="admin", days=30)
    _, child_secret = mint(root_secret, "child")
    _, leaf_secret = mint(child_secret, "leaf")
    _other, other_secret = api_token_create(actor=user, name="other", scope="admin", days=30)
    child = ApiToken.objects.get(name="child")
    leaf = ApiToken.objects.get(name="leaf")

    # when the root is revoked
    api_token_revoke(actor=user, token=root)

    # then the whole line is revoked in one transaction (one instant), the other is not
    rows = {t.name: t.revoked_at for t in ApiToken.objects.all()}
    assert rows["root"] is not None
    assert rows["child"] == rows["leaf"] == rows["root"]
    assert rows["other"] is None
    assert [reads(s) for s in (root_secret, child_secret, leaf_secret, other_secret)] == [
        401, 401, 401, 200,
    ]  # fmt: skip
    # and each token's revocation is on its own row
    revoked = {e.target_id: e.extra for e in events(AuditAction.TOKEN_REVOKED)}
    assert revoked == {
        str(root.pk): {"prefix": root.prefix, "descendants": [child.pk, leaf.pk]},
        str(child.pk): {"prefix": child.prefix, "revoked_with": root.pk},
        str(leaf.pk): {"prefix": leaf.prefix, "revoked_with": root.pk},
    }


def test_an_administrator_revoking_someones_token_revokes_its_line(user: User) -> None:
    # given a person's token that minted another, and a security admin
    admin = grant_role(make_user(username="sam"), "security_admin")
    root, secret = api_token_create(actor=user, name="root", scope="admin", days=30)
    mint(secret, "child")

    # when the admin revokes the person's token
    api_token_revoke(actor=admin, token=root)

    # then its child is revoked with it, by the admin
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert {e.actor_id for e in events(AuditAction.TOKEN_REVOKED)} == {admin.pk}


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_a_token_no_longer_valid_mints_nothing(user: User, state: str) -> None:
    # given a token that authenticated, and was revoked or ran out since (the caller's
    # copy still says it is live)
    parent, _secret = api_token_create(actor=user, name="parent", scope="admin", days=30)
    if state == "revoked":
        ApiToken.objects.filter(pk=parent.pk).update(revoked_at=timezone.now())
    else:
        ApiToken.objects.filter(pk=parent.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    created_before = len(events(AuditAction.TOKEN_CREATED))

    # when it asks the service for a token
    with pytest.raises(Refused, match="no longer valid"):
        api_token_create(actor=user, name="child", scope="read", via_token=parent)

    # then nothing is created, and the refusal is on the record
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["parent"]
    assert len(events(AuditAction.TOKEN_CREATED)) == created_before
    refused = events(AuditAction.TOKEN_CREATE_REFUSED)
    assert [(e.target_id, e.extra["reason"]) for e in refused] == [
        (str(parent.pk), f"parent_{state}")
    ]


def test_a_token_whose_ancestor_is_revoked_is_refused_even_if_left_live(user: User) -> None:
    # given a line root -> child -> leaf where only the root is marked revoked (as if the
    # revocation of its line had not happened)
    root, root_secret = api_token_create(actor=user, name="root", scope="admin", days=30)
    _, child_secret = mint(root_secret, "child")
    _, leaf_secret = mint(child_secret, "leaf")
    ApiToken.objects.filter(pk=root.pk).update(revoked_at=timezone.now())

    # when the grandchild is used
    status = reads(leaf_secret)

    # then it is refused, and the refusal says why
    assert status == 401
    assert ApiToken.objects.get(name="leaf").revoked_at is None  # only refused, not changed
    assert [e.extra["reason"] for e in events(AuditAction.TOKEN_USED_REFUSED)] == [
        "ancestor_revoked"
    ]


@pytest.mark.django_db(transaction=True)
def test_a_mint_racing_a_revocation_leaves_no_live_child(user: User) -> None:
    # given an admin token
    parent, _secret = api_token_create(actor=user, name="parent", scope="admin", days=30)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def revoke() -> None:
        try:
            barrier.wait()
            api_token_revoke(actor=user, token=ApiToken.objects.get(pk=parent.pk))
            results["revoke"] = "done"
        finally:
            connections.close_all()

    def create() -> None:
        try:
            barrier.wait()
            results["mint"] = api_token_create(
                actor=user, name="child", scope="read", days=1, via_token=parent
            )
        except Refused as refused:
            results["mint"] = refused.reason
        finally:
            connections.close_all()

    # when it mints a token while it is being revoked
    threads = [threading.Thread(target=revoke), threading.Thread(target=create)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then either the mint was refused, or its child was revoked with its parent
    assert results["revoke"] == "done"
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()
    if results["mint"] == "parent_revoked":
        assert list(ApiToken.objects.values_list("name", flat=True)) == ["parent"]
    else:
        assert ApiToken.objects.get(name="child").parent_id == parent.pk


def test_deleting_a_person_takes_their_whole_token_line(user: User) -> None:
    # given a person with a token that minted another
    _root, secret = api_token_create(actor=user, name="root", scope="admin", days=30)
    mint(secret, "child")

    # when the account is deleted (SafeChat deactivates; an operator may erase)
    user.delete()

    # then no token of theirs is left, the line did not block it
    assert not ApiToken.objects.exists()


def test_a_child_never_outlives_its_parent_once_the_maximum_life_is_lowered(
    user: User, settings: Settings
) -> None:
    # given an admin token made 20 days ago for a year
    parent, secret = api_token_create(actor=user, name="parent", scope="admin", days=366)
    ApiToken.objects.filter(pk=parent.pk).update(created_at=timezone.now() - timedelta(days=20))

    # when the bank lowers the maximum life to 30 days (the parent has 10 days left), and
    # the parent mints a child of 30 days, then one with the default life
    settings.SAFECHAT_TOKEN_MAX_DAYS = 30
    asked = Client().post(
        TOKENS, {"name": "long", "scope": "read", "days": 30},
        headers=bearer(secret), content_type="application/json",
    )  # fmt: skip
    default = Client().post(
        TOKENS, {"name": "short", "scope": "read"},
        headers=bearer(secret), content_type="application/json",
    )  # fmt: skip

    # then the first is refused on the record, and the second ends with its parent
    parent_end = ApiToken.objects.get(pk=parent.pk).created_at + timedelta(days=30)
    assert asked.status_code == 403
    assert not ApiToken.objects.filter(name="long").exists()
    assert [e.extra["reason"] for e in events(AuditAction.TOKEN_CREATE_REFUSED)] == ["lifetime"]
    assert default.status_code == 201
    assert ApiToken.objects.get(name="short").expires_at <= parent_end
