"""Provisioning by an identity provider (SCIM 2.0, docs/sso.md "Provisioning (SCIM)").

The SCIM edge (``accounts/api/scim.py``) authenticates the provider's token (scope
``scim``, owned by a security admin: the actor of every change here) and calls these
services; deactivation and reactivation are the same ``user_deactivate`` and
``user_reactivate`` every other edge calls (sessions, sockets and tokens end at once).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from accounts.hooks import room_hooks
from accounts.models import ProvisionedAccount, User
from accounts.roles import MANAGE_USERS, Role
from accounts.services._common import actor_and_people_locked, ensure_permission, ensure_person
from accounts.services.profile import NAME_FIELDS, display_name_clean
from accounts.services.users import _role_add, _user_create
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import action, action_transaction

_EMAIL = EmailValidator()


@action
def scim_user_create(
    *,
    actor: User,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    external_id: str = "",
    request: HttpRequest | None = None,
) -> User:
    """Create the account an identity provider provisions (SCIM ``POST /Users``).

    The username goes through the one account-creation path (``_user_create``): PRECIS
    form (RFC 8265), refused if invalid, taken or a look-alike of a taken one (UTS #39);
    the e-mail is checked and must not be another account's; names follow
    ``display_name_clean``. No password (the provider signs the person in; a security
    admin can send a reset link), the ``member`` role, its key pair; ``external_id`` is
    kept (``ProvisionedAccount``). Raises ``ValidationError`` keyed by field (nothing
    written) and ``Refused`` (``account.provisioning.refused``, ``permission``) unless
    ``actor`` is active and holds ``accounts.manage_users`` (checked again under its row).
    Audited ``account.created`` (``via: scim``). Locks: the actor's row; the audit chain
    last.
    """
    operation = "scim.user.create"
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=AuditAction.ACCOUNT_PROVISIONING_REFUSED,
        operation=operation, request=request,
    )  # fmt: skip
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[], permission=MANAGE_USERS,
            action=AuditAction.ACCOUNT_PROVISIONING_REFUSED, operation=operation,
            request=request,
        )  # fmt: skip
        user = _user_create(
            username=username, email=email, password=None,
            first_name=first_name, last_name=last_name,
        )  # fmt: skip
        _role_add(user=user, role=Role.MEMBER)
        ProvisionedAccount.objects.create(user=user, external_id=external_id)
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_CREATED,
            target=user,
            extra={"via": "scim", "role": Role.MEMBER.value},
            request=request,
        )
    return user


def _email_clean(*, email: str, user: User) -> str:
    email = email.strip().lower()
    if not email:
        return ""
    try:
        _EMAIL(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.error_list}) from None
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise ValidationError(
            {
                "email": ValidationError(
                    "An account with that email address exists already.", code="email_taken"
                )
            }
        )
    return email


@action
def scim_user_update(
    *,
    actor: User,
    user: User,
    username: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
    external_id: str | None = None,
    request: HttpRequest | None = None,
) -> list[str]:
    """Change what an identity provider keeps of an account (SCIM ``PUT``/``PATCH``):
    the names, the e-mail, ``external_id``; None leaves a field as it is, "" clears it.
    Returns the fields that changed.

    A username is permanent here: one that is not the account's own (in PRECIS form) is
    refused (``ValidationError``, ``username``, code ``mutability``). Names follow
    ``display_name_clean``; an e-mail must be valid and not another account's
    (``email_taken``). ``Refused`` (``account.provisioning.refused``): ``permission``
    (checked again under the rows), ``not a person``. Audited
    ``account.provisioning.updated`` with the fields changed, never their values; a name
    change is heard by the person's rooms (``member.updated``) after commit. Nothing that
    changes nothing is written or recorded. Locks: the actor and the account; the audit
    chain last.
    """
    operation = "scim.user.update"
    refusal = AuditAction.ACCOUNT_PROVISIONING_REFUSED
    ensure_permission(
        actor=actor, permission=MANAGE_USERS, action=refusal, target=user, operation=operation,
        request=request,
    )  # fmt: skip
    ensure_person(actor=actor, user=user, action=refusal, operation=operation, request=request)
    names = display_name_clean(first_name=first_name, last_name=last_name)
    with action_transaction():
        locked = actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, action=refusal, target=user,
            operation=operation, request=request,
        )[user.pk]  # fmt: skip
        if username is not None and User.normalize_username(username.strip()) != locked.username:
            raise ValidationError(
                {
                    "username": ValidationError(
                        "A SafeChat username cannot be changed.", code="mutability"
                    )
                }
            )
        wanted: dict[str, str] = dict(names)
        if email is not None:
            wanted["email"] = _email_clean(email=email, user=locked)
        changed = [f for f, v in wanted.items() if getattr(locked, f) != v]
        for field in changed:
            setattr(locked, field, wanted[field])
        if changed:
            try:
                with transaction.atomic():
                    locked.save(update_fields=changed)
            except IntegrityError:
                raise ValidationError(
                    {"email": ValidationError("That email is taken.", code="email_taken")}
                ) from None
        record, _ = ProvisionedAccount.objects.get_or_create(user=locked)
        if external_id is not None and record.external_id != external_id:
            record.external_id = external_id
            record.save(update_fields=["external_id", "updated_at"])
            changed.append("external_id")
        if changed:
            audit_record(
                actor=actor,
                action=AuditAction.ACCOUNT_PROVISIONING_UPDATED,
                target=locked,
                extra={"fields": changed},
                request=request,
            )
            if any(f in NAME_FIELDS for f in changed):
                room_hooks().member_renamed(locked)
    for field in changed:
        if field != "external_id":
            setattr(user, field, getattr(locked, field))
    return changed


@action
def scim_request_refused(
    *,
    actor: User | None,
    reason: str,
    detail: str,
    target: User | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Record a SCIM request refused at the edge or by validation (a token without the
    ``scim`` scope, a malformed filter or body, an invalid or taken value, an unknown
    account): ``account.provisioning.refused`` with ``reason`` (the SCIM error keyword or
    ``scope``, ``not_found``) and ``detail`` (at most 200 characters, never a value the
    client sent). Writes nothing else."""
    with action_transaction():
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_PROVISIONING_REFUSED,
            target=target,
            extra={"reason": reason[:64], "detail": detail[:200]},
            request=request,
        )
