"""Whether SafeChat's own passwords sign anyone in (docs/accounts.md, "Local passwords and
the break-glass account").

With ``SAFECHAT_LOCAL_PASSWORDS`` off, people sign in through the organisation's identity
provider only, and a password signs in only the break-glass accounts named in
``SAFECHAT_BREAK_GLASS_USERNAMES`` (still with SafeChat's second factor; every use
audited and alerted). The settings' check is ``accounts.sso.local_password_policy_check``
(pure); nothing here touches the database.
"""

from __future__ import annotations

from django.conf import settings

from accounts.sso import LocalPasswordPolicyError, local_password_policy_check
from safechat.unicode_text import username_lookup_form

__all__ = [
    "LocalPasswordPolicyError",
    "break_glass",
    "local_password_policy_check",
    "local_passwords_enabled",
    "password_signs_in",
]


def local_passwords_enabled() -> bool:
    return bool(settings.SAFECHAT_LOCAL_PASSWORDS)


def break_glass(username: str) -> bool:
    """Whether ``username`` (any case or width) names a configured break-glass account."""
    wanted = username_lookup_form(username.strip())
    return any(username_lookup_form(n) == wanted for n in settings.SAFECHAT_BREAK_GLASS_USERNAMES)


def password_signs_in(username: str) -> bool:
    """Whether a password may sign ``username`` in: always with local passwords on, else
    only a break-glass account."""
    return local_passwords_enabled() or break_glass(username)
