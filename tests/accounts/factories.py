from __future__ import annotations

from typing import Any

import factory

from accounts.models import User


class UserFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    """A user with a known password; `make_user` is the typed entry point."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@bank.example")
    password = factory.django.Password("correct horse battery staple")


def make_user(**fields: Any) -> User:
    user: User = UserFactory(**fields)
    return user
