from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower


class User(AbstractUser):
    """A person (or integration owner) who signs in to SafeChat.

    Custom from the first migration so that keys, roles and audit snapshots can
    hang on it without a later swap of ``AUTH_USER_MODEL``.
    """

    email = models.EmailField("email address", blank=True)

    class Meta:
        db_table = "accounts_user"
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="accounts_user_email_unique_ci",
            )
        ]
