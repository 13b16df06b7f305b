"""django-guardian's internal anonymous user row is nobody: no administrator can pick it
(the admin's lookup finds no one) or act on it (each service refuses, audited)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group
from guardian.utils import get_anonymous_user

from accounts.models import User
from accounts.roles import MANAGE_USERS, Role
from accounts.services import (
    factors_reset,
    password_reset_by_admin,
    role_grant,
    session_end_all,
    user_admin_target,
    user_deactivate,
    user_reactivate,
)
from audit.actions import AuditAction
from audit.models import AuditEvent
from safechat.actions import Refused
from tests.accounts.factories import grant_role, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin() -> User:
    return grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)


def test_the_admin_lookup_finds_no_one_for_the_system_account(admin: User) -> None:
    # given the system account's id, and a deactivated person's
    system = get_anonymous_user()
    former = make_user(username="former", is_active=False)

    # when a security admin looks each up to act on them
    found_system = user_admin_target(
        actor=admin, user_id=system.pk, permission=MANAGE_USERS, operation="account.deactivate"
    )
    found_former = user_admin_target(
        actor=admin, user_id=former.pk, permission=MANAGE_USERS, operation="account.reactivate"
    )

    # then the system account is no one; a deactivated person is found (to reactivate)
    assert found_system is None
    assert found_former == former


SERVICES: dict[str, tuple[Callable[..., object], AuditAction, str]] = {
    "role grant": (
        lambda actor, user: role_grant(actor=actor, user=user, role=Role.SECURITY_ADMIN),
        AuditAction.ACCOUNT_ROLE_REFUSED,
        "role.grant",
    ),
    "deactivate": (
        lambda actor, user: user_deactivate(actor=actor, user=user),
        AuditAction.ACCOUNT_ADMIN_REFUSED,
        "account.deactivate",
    ),
    "reactivate": (
        lambda actor, user: user_reactivate(actor=actor, user=user),
        AuditAction.ACCOUNT_ADMIN_REFUSED,
        "account.reactivate",
    ),
    "password reset": (
        lambda actor, user: password_reset_by_admin(actor=actor, user=user),
        AuditAction.ACCOUNT_ADMIN_REFUSED,
        "password.reset",
    ),
    "factors reset": (
        lambda actor, user: factors_reset(actor=actor, user=user),
        AuditAction.ACCOUNT_ADMIN_REFUSED,
        "factor.reset",
    ),
    "sessions end": (
        lambda actor, user: session_end_all(actor=actor, user=user),
        AuditAction.ACCOUNT_ADMIN_REFUSED,
        "session.end_all",
    ),
}


@pytest.mark.parametrize("service", SERVICES)
def test_no_admin_service_acts_on_the_system_account(admin: User, service: str) -> None:
    # given the system account as it is
    run, refusal, operation = SERVICES[service]
    system = get_anonymous_user()
    before = User.objects.filter(pk=system.pk).values(
        "password", "is_active", "is_staff", "credential_epoch"
    )[0]
    seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    # when a security admin hands it straight to the service
    with pytest.raises(Refused, match="no such person"):
        run(admin, system)

    # then nothing of it changed, and the only event is the refusal
    after = User.objects.filter(pk=system.pk).values(
        "password", "is_active", "is_staff", "credential_epoch"
    )[0]
    assert after == before
    assert not Group.objects.filter(user=system).exists()
    recorded = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.action, e.extra.get("reason"), e.extra.get("operation")) for e in recorded] == [
        (refusal, "not a person", operation)
    ]
