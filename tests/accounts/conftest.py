"""Fixtures for account tests: roles, verified clients, audit and mail assertions."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from tests.accounts.factories import grant_role, make_user
from tests.support.clients import verified_client as signed_in

PASSWORD = "correct horse battery staple"


def actions() -> list[str]:
    """Audit actions recorded so far, oldest first."""
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def outbox_count() -> int:
    return len(mail.outbox)


@pytest.fixture
def security_admin() -> User:
    return grant_role(make_user(username="secadmin"), Role.SECURITY_ADMIN)


@pytest.fixture
def admin_client(security_admin: User) -> Client:
    return signed_in(security_admin)


@pytest.fixture
def verified_client(user: User) -> Client:
    return signed_in(user)
