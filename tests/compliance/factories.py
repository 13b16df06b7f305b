"""Compliance officers, messages of a chosen age, and holds, for the retention tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from rooms.models import Message, Room
from rooms.services import message_post
from tests.accounts.factories import grant_role, make_user


def make_officer(**fields: object) -> User:
    return grant_role(make_user(**fields), Role.COMPLIANCE_OFFICER)


def post_aged(*, sender: User, room: Room, days: float, text: str = "hello") -> Message:
    """A real (encrypted) message, then dated ``days`` ago."""
    message = message_post(sender=sender, room=room, text=text)
    sent = timezone.now() - timedelta(days=days)
    Message.objects.filter(pk=message.pk).update(created_at=sent)
    message.created_at = sent
    return message
