"""Replaces django.contrib.auth's ``createsuperuser``: refused, and the refusal audited.

``accounts.models.UserManager.create_superuser`` refuses as well, for any other path.
"""

from __future__ import annotations

from django.contrib.auth.management.commands import createsuperuser

from accounts.management.commands._operator import RefusedCommand
from accounts.models import SUPERUSER_REFUSED


class Command(RefusedCommand, createsuperuser.Command):
    help = "Refused: SafeChat has no superusers (see bootstrap_admin)."
    instead = SUPERUSER_REFUSED
