"""Test clients of the portal and the API, signed in as our sign-in leaves a person."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.models import User
from tests.accounts.factories import sign_in_client


def verified_client(user: User, **options: Any) -> Client:
    """A client (``Client(**options)``) signed in as ``user`` with the second factor
    passed, the session recorded as ``accounts.services.session_start`` records it:
    what every portal page and the session-authenticated API need."""
    client = Client(**options)
    sign_in_client(client, user, verified=True)
    return client
