"""A person's own profile: the display name others see beside their username."""

from __future__ import annotations

from typing import cast

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from django.http import HttpRequest

from accounts.hooks import room_hooks
from accounts.models import User
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.locks import rows_locked

# The fields of a display name (``User.display_name``: "First Last").
NAME_FIELDS = ("first_name", "last_name")
_NO_NUL = ProhibitNullCharactersValidator()


def display_name_clean(**values: str | None) -> dict[str, str]:
    """The name fields given (``first_name``, ``last_name``; None: not given), each with
    surrounding whitespace removed and checked by the model field's own rules: at most 64
    characters, no direction control, not only invisible characters
    (``safechat.unicode_text.validate_label``), and no NUL. An empty value is allowed (no
    name: the username is shown).

    The one validation of a display name, for every edge that sets one: the profile page
    and API (``user_profile_update``), an invitation's acceptance and the first
    administrator's bootstrap (``accounts.services.users``). Raises ``ValidationError``
    keyed by field, with each rule's code (``max_length``, ``bidi_control``,
    ``invisible``, ``null_characters_not_allowed``).
    """
    cleaned: dict[str, str] = {}
    errors: dict[str, list[ValidationError]] = {}
    for field, raw in values.items():
        if field not in NAME_FIELDS:
            raise TypeError(f"{field} is not a name field")
        if raw is None:
            continue
        value = raw.strip()
        try:
            _NO_NUL(value)
            model_field = cast("models.CharField[str, str]", User._meta.get_field(field))
            cleaned[field] = str(model_field.clean(value, None))
        except ValidationError as exc:
            errors[field] = exc.error_list
    if errors:
        raise ValidationError(errors)
    return cleaned


@action
def user_profile_update(
    *,
    actor: User,
    first_name: str | None = None,
    last_name: str | None = None,
    request: HttpRequest | None = None,
) -> User:
    """Change ``actor``'s own display name (first and/or last name; None leaves a field
    as it is, "" clears it). Returns the account as saved, and ``actor`` shows it too.

    Validation: :func:`display_name_clean` (``ValidationError`` keyed by field, nothing
    written). Locks: the person's row (the users step of the lock order), under which
    the account must still be active (else ``Refused``, audited
    ``account.profile.refused``, reason ``inactive``); the audit chain last. A change is
    audited ``account.profile.updated`` with the fields that changed, never their values
    (docs/accounts.md, "Display names"), and every room the person is in hears
    ``member.updated`` (``change: name``) after commit. Nothing that changes nothing is
    written, recorded or published.
    """
    wanted = display_name_clean(first_name=first_name, last_name=last_name)
    with action_transaction():
        locked = rows_locked(User, [actor.pk])
        if not locked or not locked[0].is_active:
            raise Refused(
                "This account is no longer active.",
                actor=actor,
                action=AuditAction.ACCOUNT_PROFILE_REFUSED,
                target=actor,
                reason="inactive",
                request=request,
            )
        user = locked[0]
        changed = [f for f in NAME_FIELDS if f in wanted and wanted[f] != getattr(user, f)]
        if changed:
            for field in changed:
                setattr(user, field, wanted[field])
            user.save(update_fields=changed)
            audit_record(
                actor=user,
                action=AuditAction.ACCOUNT_PROFILE_UPDATED,
                target=user,
                extra={"fields": changed},
                request=request,
            )
            room_hooks().member_renamed(user)
    for field in NAME_FIELDS:
        setattr(actor, field, getattr(user, field))
    return user
