"""Replaces django.contrib.auth's ``changepassword``: refused, and the refusal audited.

Django's command would set a password outside ``accounts.services``: no audit event,
the person's sessions, sockets and API tokens left working, the credential epoch as it
was.
"""

from __future__ import annotations

from django.contrib.auth.management.commands import changepassword

from accounts.management.commands._operator import RefusedCommand


class Command(RefusedCommand, changepassword.Command):
    help = "Refused: passwords change in the portal or are reset by a security admin."
    instead = (
        "SafeChat does not set passwords from the command line. A person changes their "
        "own password in the portal (their account, 'Password'); a security admin resets "
        "someone's in the portal's 'User administration' ('Reset password'): the password "
        "is voided, their sessions and tokens end and a one-time link is emailed, audited "
        "'auth.password.reset.requested'."
    )
