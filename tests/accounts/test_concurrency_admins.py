"""The bank always keeps an active security admin, even when administrators act on each
other at the same instant (real threads, PostgreSQL row locks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import PermissionDenied

from accounts.models import User
from accounts.roles import Role
from accounts.services import role_revoke, user_deactivate
from tests.accounts.conftest import actions
from tests.accounts.factories import grant_role, make_user
from tests.rooms.concurrency import postgresql_only, run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    postgresql_only("deactivations of two admins race only where rows lock one by one"),
    pytest.mark.parametrize("round_", range(5)),
]


def active_security_admins() -> set[str]:
    return set(
        User.objects.filter(is_active=True, groups__name=Role.SECURITY_ADMIN).values_list(
            "username", flat=True
        )
    )


def deactivate(actor: User, user: User) -> Callable[[], None]:
    return lambda: user_deactivate(actor=actor, user=User.objects.get(pk=user.pk))


def revoke(actor: User, user: User) -> Callable[[], object]:
    return lambda: role_revoke(
        actor=User.objects.get(pk=actor.pk), user=User.objects.get(pk=user.pk),
        role=Role.SECURITY_ADMIN,
    )  # fmt: skip


def test_admins_deactivating_and_demoting_each_other_at_once_keep_one(round_: int) -> None:
    # given three security admins
    ann, bob, cat = (
        grant_role(make_user(username=name), Role.SECURITY_ADMIN) for name in ("ann", "bob", "cat")
    )

    # when each deactivates or demotes the next, all at the same instant
    outcomes = run_together(
        deactivate(ann, bob), deactivate(bob, cat), revoke(cat, ann), revoke(ann, cat)
    )

    # then at least one admin remains active, and every change that happened is on the
    # record while every other one was refused (never a partial change)
    assert active_security_admins()
    done = sum(o.error is None for o in outcomes)
    assert all(isinstance(o.error, PermissionDenied) for o in outcomes if o.error is not None)
    assert actions().count("account.deactivated") + actions().count("account.role.revoked") == (
        done
    )
