"""Template filters naming people: ``{{ user|person_label }}`` and
``{{ message|sender_label }}``, plain text (the template escapes it), as
``accounts.models.person_label`` says it."""

from __future__ import annotations

from typing import Any

from django import template

from accounts.models import User, person_label

register = template.Library()


@register.filter(name="person_label")
def person_label_filter(person: Any) -> str:
    """A person's label (``accounts.models.person_label``): "First Last (@username)", or
    "@username" with no name; of a ``User``, or any object or dict with ``name`` and
    ``username``."""
    if isinstance(person, User):
        return person.person_label()
    if isinstance(person, dict):
        return person_label(name=str(person.get("name", "")), username=str(person["username"]))
    return person_label(name=str(person.name), username=str(person.username))


@register.filter(name="sender_label")
def sender_label(message: Any) -> str:
    """A message's sender (``sender_name``, ``sender``) as ``person_label`` names them."""
    return person_label(name=str(message.sender_name), username=str(message.sender))
