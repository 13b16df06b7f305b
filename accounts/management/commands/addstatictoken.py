"""Replaces django-otp's ``addstatictoken``: refused, and the refusal audited.

Django-otp's command would add a clear-text static code to someone's account outside
``accounts.services.factors``: a second factor nobody recorded, that its owner does
not know of.
"""

from __future__ import annotations

from django_otp.plugins.otp_static.management.commands import addstatictoken

from accounts.management.commands._operator import RefusedCommand


class Command(RefusedCommand, addstatictoken.Command):  # type: ignore[misc]
    help = "Refused: backup codes are made by their owner; a security admin resets factors."
    instead = (
        "SafeChat does not add second-factor codes from the command line. A person makes "
        "their own backup codes in the portal ('Second factors', 'New backup codes'), "
        "audited 'factor.backup_codes.generated'; a security admin who must let someone in "
        "again resets their factors (the admin's Users page, 'Reset second factors'), "
        "audited 'factor.reset', and the person enrols again at their next sign-in."
    )
