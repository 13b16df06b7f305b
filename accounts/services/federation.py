"""Federated sign-in: an identity a provider asserted becomes a session, through its link.

The rules (docs/sso.md):

* an account is found by the link of (issuer, subject) alone, never by e-mail. An e-mail
  that matches an account with no link is refused (``unlinked_email``), however the
  provider is configured, until a security admin links that account;
* an account is created at first sign-in only where the provider is configured to
  (``create_accounts``), with the username of the configured claim in SafeChat's own form
  (PRECIS, RFC 8265) and never one that is taken or looks like one that is (UTS #39): a
  collision is refused, never merged;
* the session that results is password-equivalent: SafeChat's own second factor is still
  due, unless the provider is trusted for it and says several factors were used (an ID
  token's ``amr``/``acr``, a SAML ``AuthnContextClassRef``:
  ``accounts.sso.provider_asserts_mfa``); then the session is verified with the record of
  that (``ProviderMfaDevice``) and the sign-in is complete;
* a message that must be used once (a SAML assertion, and the request it answers) is
  recorded before anything else, under unique constraints (``SamlAssertionUse``): a
  second use, even at the same instant, is refused (``replayed``).

The protocols (``accounts.oidc``, ``accounts.saml``) check the provider's answer and
hand over an ``AssertedIdentity``; everything after that is here, shared. Every sign-in,
refusal, link, unlink and account created is audited, with the channel, address and
request id of the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import (
    NAME_PART_MAX_LENGTH,
    FederatedIdentity,
    OidcLogoutTokenUse,
    ProviderMfaDevice,
    SamlAssertionUse,
    User,
    UserSession,
)
from accounts.providers import federated_provider_get
from accounts.roles import MANAGE_USERS, Role
from accounts.selectors import federated_identity_find
from accounts.services._common import (
    actor_and_people_locked,
    client_ip,
    ensure_not_self,
    ensure_permission,
    ensure_person,
)
from accounts.services.auth import second_factor_accepted
from accounts.services.idp_access import idp_access_apply
from accounts.services.sessions import session_start, sessions_end_rows
from accounts.sso import AssertedIdentity, provider_asserts_mfa, sign_in_evidence
from audit.actions import AuditAction
from audit.services import audit_record
from safechat.actions import Refused, action, action_transaction
from safechat.keyring.services import user_key_create
from safechat.ratelimit import Rate, rate_exceeded, rate_hit
from safechat.unicode_text import case_insensitive_skeleton, refuse_at_sign, validate_label

NOT_LINKED = (
    "No SafeChat account is linked to this identity. Ask a security administrator to link "
    "your account to it."
)
UNLINKED_EMAIL = (
    "An account with this e-mail address exists but is not linked to this identity, so it "
    "cannot be signed in to this way. Ask a security administrator to link it, or sign in "
    "with your SafeChat password."
)
DEACTIVATED = "This account was deactivated."
USERNAME_TAKEN = (
    "The username this provider gives you is taken, or looks like one that is. Ask a "
    "security administrator to create or link your account."
)
USERNAME_INVALID = (
    "The username this provider gives you is not one SafeChat accepts. Ask a security "
    "administrator to create or link your account."
)
ALREADY_LINKED = (
    "That identity is linked to an account already, or this account already has one at "
    "that provider."
)
REPLAYED = "This sign-in was used already. Start again from SafeChat."
SUBJECT_MAX_LENGTH = 255
# Expired assertion records deleted by each new one: enough to keep up, never a long lock.
EXPIRED_USES_DELETED = 100


@dataclass(frozen=True)
class FederatedSignIn:
    """The result of a federated sign-in: who, and whether the second factor is done."""

    user: User
    verified: bool


def _refused(
    identity: AssertedIdentity,
    *,
    request: HttpRequest,
    reason: str,
    message: str,
    target: User | None = None,
) -> Refused:
    return Refused(
        message,
        actor=None,
        action=AuditAction.AUTH_FEDERATED_REFUSED,
        target=target,
        reason=reason,
        extra=_identity_extra(identity),
        request=request,
    )


def _identity_extra(identity: AssertedIdentity) -> dict[str, object]:
    return {
        "provider": identity.provider.key,
        "issuer": identity.issuer,
        "subject": identity.subject,
    }


@action
def federated_sign_in_refused(
    *, request: HttpRequest, provider_key: str, reason: str, detail: str = ""
) -> None:
    """Record a federated sign-in refused before an identity was established (a bad
    state, nonce, audience, issuer, signature, algorithm or expiry; the provider's own
    error; an unknown provider): ``auth.federated.refused`` with ``reason``."""
    with action_transaction():
        audit_record(
            actor=None,
            action=AuditAction.AUTH_FEDERATED_REFUSED,
            extra={"reason": reason, "provider": provider_key[:32], "detail": detail[:200]},
            request=request,
        )


@action
def federated_attempt_count(*, request: HttpRequest, provider_key: str) -> int | None:
    """Count an answer from a provider (an OIDC callback or Logout Token, a SAML response
    or logout request) against its client address's budget, ``SAFECHAT_SSO_RATE_LIMIT``,
    before any signature is checked.

    Returns None while within the budget, else the seconds until one more is allowed (the
    edge answers 429 and checks nothing). The answer that spends the budget records
    ``auth.federated.refused`` with ``reason: throttled`` once; the ones refused after it
    are not recorded each, so a flood cannot flood the audit log too.
    """
    rate = Rate.of(settings.SAFECHAT_SSO_RATE_LIMIT)
    ip = client_ip(request) or "unknown"
    retry_after = rate_exceeded(rate, "sso-answers", ip, policy="sso-answers")
    if retry_after is not None:
        return retry_after
    rate_hit(rate, "sso-answers", ip, policy="sso-answers")
    if rate_exceeded(rate, "sso-answers", ip) is not None:
        with action_transaction():
            audit_record(
                actor=None,
                action=AuditAction.AUTH_FEDERATED_REFUSED,
                extra={
                    "reason": "throttled",
                    "provider": provider_key[:32],
                    "detail": f"{rate.limit} answers in {rate.seconds} s from one address",
                },
                request=request,
            )
    return None


def _one_time_use_record(*, request: HttpRequest, identity: AssertedIdentity) -> None:
    """Record that the assertion (and the request it answers) is used, in a transaction
    of its own that commits before the sign-in's, so a refused sign-in uses it up too.
    Raises ``Refused`` (``replayed``) if either was used before; the unique constraints
    decide between two uses at the same instant. Then deletes a batch of expired records
    (rows another transaction holds are skipped, so it waits for nothing)."""
    once = identity.one_time
    if once is None:
        return
    now = timezone.now()
    expires_at = max(once.valid_until, now)
    uses: type[SamlAssertionUse] | type[OidcLogoutTokenUse]
    try:
        with transaction.atomic():
            if identity.provider.protocol == "oidc":
                # An OpenID Connect Logout Token, by its jti (Back-Channel Logout 1.0, 2.6).
                uses = OidcLogoutTokenUse
                uses.objects.create(
                    issuer=identity.issuer, jti=once.assertion_id, expires_at=expires_at
                )
            else:
                uses = SamlAssertionUse
                uses.objects.create(
                    issuer=identity.issuer,
                    assertion_id=once.assertion_id,
                    request_id=once.request_id,
                    expires_at=expires_at,
                )
            stale = list(
                uses.objects.filter(expires_at__lt=now)
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:EXPIRED_USES_DELETED]
            )
            if stale:
                uses.objects.filter(pk__in=stale).delete()
    except IntegrityError:
        raise _refused(identity, request=request, reason="replayed", message=REPLAYED) from None


@action
def federated_sign_in(*, request: HttpRequest, identity: AssertedIdentity) -> FederatedSignIn:
    """Sign in the account linked to ``identity`` (checked by ``accounts.oidc`` or
    ``accounts.saml``), or create it where the provider allows; returns the user and
    whether the sign-in is complete.

    Refused (``Refused``, audited ``auth.federated.refused`` after the rollback, nothing
    created): ``replayed`` (the assertion, or the request it answers, was used before:
    checked first, and its use recorded whatever follows), ``unlinked_email`` (an account
    with the asserted e-mail has no link to this identity), ``not_linked`` (no link, and
    the provider creates no accounts), ``deactivated``, ``username_missing``,
    ``username_invalid``, ``username_taken``. Success records ``auth.federated.verified``
    (and, for a new account, ``account.created`` and ``account.identity.linked``); with a
    trusted provider's multi-factor assertion also ``auth.login.succeeded`` (``factor:
    provider_mfa``).
    """
    _one_time_use_record(request=request, identity=identity)
    with action_transaction():
        link = federated_identity_find(issuer=identity.issuer, subject=identity.subject)
        if link is None:
            link = _link_for_new_account(request=request, identity=identity)
        user: User = link.user
        if not user.is_active:
            raise _refused(
                identity, request=request, reason="deactivated", message=DEACTIVATED, target=user
            )
        # Roles and barrier groups as the provider's groups say (its mapping, if any).
        idp_access_apply(user=user, identity=identity, request=request)
        login(request, user, backend="accounts.backends.RoleBackend")  # a fresh session key
        session_start(
            request=request, user=user, federated_identity=link,
            federated_session_index=identity.session_index,
        )  # fmt: skip
        FederatedIdentity.objects.filter(pk=link.pk).update(last_used_at=timezone.now())
        mfa = provider_asserts_mfa(identity)
        device = None
        if mfa:
            device, _ = ProviderMfaDevice.objects.get_or_create(
                identity=link,
                defaults={"user": user, "name": identity.provider.name, "confirmed": True},
            )
        audit_record(
            actor=user,
            action=AuditAction.AUTH_FEDERATED_VERIFIED,
            target=user,
            extra={
                **_identity_extra(identity),
                **sign_in_evidence(identity),
                "trusted_for_mfa": identity.provider.trust_mfa,
                "second_factor_done": mfa,
            },
            request=request,
        )
        if device is not None:
            second_factor_accepted(request=request, user=user, device=device)
    return FederatedSignIn(user=user, verified=mfa)


def _link_for_new_account(*, request: HttpRequest, identity: AssertedIdentity) -> FederatedIdentity:
    """No link yet: refuse, or create the account and its link (inside the transaction)."""
    if identity.email:
        holder = User.objects.filter(email__iexact=identity.email).first()
        if holder is not None:
            # Never by e-mail: whoever registered this address at the provider is not
            # thereby its holder here.
            raise _refused(
                identity, request=request, reason="unlinked_email", message=UNLINKED_EMAIL,
                target=holder,
            )  # fmt: skip
    if not identity.provider.create_accounts:
        raise _refused(identity, request=request, reason="not_linked", message=NOT_LINKED)
    user = _account_create(request=request, identity=identity)
    try:
        with transaction.atomic():
            link = FederatedIdentity.objects.create(
                user=user,
                provider=identity.provider.key,
                protocol=identity.provider.protocol,
                issuer=identity.issuer,
                subject=identity.subject,
                linked_via="created",
            )
    except IntegrityError:
        # The same identity signed in twice at once: the other request created it.
        raise _refused(
            identity, request=request, reason="username_taken", message=USERNAME_TAKEN
        ) from None
    audit_record(
        actor=user,
        action=AuditAction.ACCOUNT_CREATED,
        target=user,
        extra={"via": "federated", "provider": identity.provider.key, "role": Role.MEMBER.value},
        request=request,
    )
    audit_record(
        actor=user,
        action=AuditAction.ACCOUNT_IDENTITY_LINKED,
        target=user,
        extra={**_identity_extra(identity), "via": "created"},
        request=request,
    )
    return link


def _label(value: str) -> str:
    # A name part the provider sends that SafeChat would refuse is left out, not cut.
    if len(value) > NAME_PART_MAX_LENGTH:
        return ""
    try:
        validate_label(value)
        refuse_at_sign(value)
    except ValidationError:
        return ""
    return value


def _account_create(*, request: HttpRequest, identity: AssertedIdentity) -> User:
    """The account of a first federated sign-in: its username from the configured claim
    in PRECIS form, refused if taken or confusable; no password (the provider signs it
    in; a security admin can send a reset link); the member role; its key pair."""
    from django.contrib.auth.models import Group

    claim = identity.username
    if not claim:
        raise _refused(
            identity, request=request, reason="username_missing", message=USERNAME_INVALID
        )
    username = User.normalize_username(claim)
    taken = User.objects.filter(
        Q(username=username) | Q(username_skeleton=case_insensitive_skeleton(username))
    ).exists()
    if taken:
        raise _refused(identity, request=request, reason="username_taken", message=USERNAME_TAKEN)
    user = User(
        username=username,
        # Only an address the provider vouches for; an unverified one is left out.
        email=identity.email.lower() if identity.email_verified else "",
        first_name=_label(identity.first_name),
        last_name=_label(identity.last_name),
    )
    user.set_unusable_password()
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        taken_now = any(
            e.code in {"unique", "unique_together"} or "similar" in " ".join(e.messages)
            for errors in exc.error_dict.values()
            for e in errors
        )
        raise _refused(
            identity, request=request,
            reason="username_taken" if taken_now else "username_invalid",
            message=USERNAME_TAKEN if taken_now else USERNAME_INVALID,
        ) from None  # fmt: skip
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise _refused(
            identity, request=request, reason="username_taken", message=USERNAME_TAKEN
        ) from None
    group, _ = Group.objects.get_or_create(name=Role.MEMBER.value)
    user.groups.add(group)
    user_key_create(user=user)
    return user


# --- Logout requested by the provider ---------------------------------------------------


@action
def federated_logout(
    *,
    request: HttpRequest,
    identity: AssertedIdentity,
    session_indexes: tuple[str, ...] = (),
) -> int:
    """End the sessions a provider's logout names (SAML single logout, Profiles 4.4;
    OpenID Connect Back-Channel Logout 1.0, 2.7): the live sessions that ``identity``'s
    link signed in, those with one of ``session_indexes`` (SAML ``SessionIndex``, OIDC
    ``sid``) if any are given, else all of that link's. An identity with no ``subject``
    (a Logout Token with only a ``sid``) names the sessions of that provider's issuer with
    one of ``session_indexes``, whoever's. Their sockets close at once
    (``access.changed``). Returns how many ended; an identity linked to nothing, or with
    no such session, ends none and is still recorded.

    ``identity.one_time`` (the logout request's ID, the Logout Token's ``jti``) is
    recorded first, like an assertion's: a replayed one is refused (``Refused``,
    ``replayed``, audited ``auth.federated.refused``). Audited ``auth.federated.logout``
    (``provider``, ``issuer``, ``subject``, ``session_indexes``, ``sessions_ended``).
    Locks: the sessions' rows (ascending); the audit chain last.
    """
    _one_time_use_record(request=request, identity=identity)
    indexes = [i[:255] for i in session_indexes if i]
    link = (
        federated_identity_find(issuer=identity.issuer, subject=identity.subject)
        if identity.subject
        else None
    )
    with action_transaction():
        rows: list[UserSession] = []
        found = UserSession.objects.select_for_update(of=("self",)).filter(ended_at__isnull=True)
        if link is not None:
            found = found.filter(federated_identity=link)
            if indexes:
                found = found.filter(federated_session_index__in=indexes)
            rows = list(found.order_by("pk"))
        elif not identity.subject and indexes:
            found = found.filter(
                federated_identity__issuer=identity.issuer, federated_session_index__in=indexes
            )
            rows = list(found.order_by("pk"))
        sessions_end_rows(rows=rows, reason="provider_logout")
        users = {row.user_id for row in rows}
        target = link.user if link is not None else None
        if target is None and len(users) == 1:
            target = rows[0].user
        audit_record(
            actor=None,  # the provider asked; no one signed in here did
            action=AuditAction.AUTH_FEDERATED_LOGOUT,
            target=target,
            extra={
                **_identity_extra(identity),
                "session_indexes": list(session_indexes)[:10],
                "sessions_ended": len(rows),
            },
            request=request,
        )
    return len(rows)


# --- Links made and removed by security admins ---------------------------------------


def _link_refused(*, actor: User, user: User, request: HttpRequest | None, reason: str) -> Refused:
    return Refused(
        ALREADY_LINKED if reason == "already linked" else "That cannot be linked.",
        actor=actor,
        action=AuditAction.ACCOUNT_ADMIN_REFUSED,
        target=user,
        reason=reason,
        extra={"operation": "account.identity.link"},
        request=request,
    )


@action
def federated_identity_link(
    *,
    actor: User,
    user: User,
    provider_key: str,
    subject: str,
    request: HttpRequest | None = None,
) -> FederatedIdentity:
    """Link ``user`` to the identity ``subject`` at the configured provider
    ``provider_key`` (its issuer: an OIDC issuer or a SAML IdP's entity ID; ``subject`` its
    ``sub`` or persistent NameID), so that identity signs in to this account.

    Security admins only (``accounts.manage_users``, checked again under the rows of the
    actor and ``user``), never for their own account. Refused, audited
    ``account.admin.refused``: ``permission``, ``self``, ``not a person``, ``unknown
    provider``, ``subject`` (empty, longer than 255 characters or with control
    characters), ``already linked`` (the identity is another account's, or ``user`` has
    one at that issuer: the constraints decide, so two admins at once cannot both link).
    Audited ``account.identity.linked`` (``via: admin``).
    """
    operation = "account.identity.link"
    ensure_permission(actor=actor, permission=MANAGE_USERS, operation=operation, request=request)
    provider = federated_provider_get(provider_key)
    if provider is None:
        raise _link_refused(actor=actor, user=user, request=request, reason="unknown provider")
    if not (0 < len(subject) <= SUBJECT_MAX_LENGTH) or any(
        ord(c) < 0x20 or ord(c) == 0x7F for c in subject
    ):
        raise _link_refused(actor=actor, user=user, request=request, reason="subject")
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[user], permission=MANAGE_USERS, operation=operation,
            request=request,
        )  # fmt: skip
        ensure_person(actor=actor, user=user, operation=operation, request=request)
        ensure_not_self(actor=actor, user=user, operation=operation, request=request)
        try:
            with transaction.atomic():
                link = FederatedIdentity.objects.create(
                    user=user,
                    provider=provider.key,
                    protocol=provider.protocol,
                    issuer=provider.issuer,
                    subject=subject,
                    linked_via="admin",
                )
        except IntegrityError:
            raise _link_refused(
                actor=actor, user=user, request=request, reason="already linked"
            ) from None
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_IDENTITY_LINKED,
            target=user,
            extra={
                "provider": provider.key,
                "issuer": provider.issuer,
                "subject": subject,
                "via": "admin",
            },
            request=request,
        )
    return link


@action
def federated_identity_unlink(
    *, actor: User, identity_id: int, request: HttpRequest | None = None
) -> bool:
    """Remove a link (security admins, never their own): that identity signs in to the
    account no more, and the sessions it verified as a trusted provider's multi-factor
    sign-in end at once (their sockets close). Returns False for a link that no longer
    exists (nothing recorded). Audited ``account.identity.unlinked``; refusals
    ``account.admin.refused``. Locks: the actor and the account, then the link's row and
    the sessions; the audit chain last."""
    operation = "account.identity.unlink"
    ensure_permission(actor=actor, permission=MANAGE_USERS, operation=operation, request=request)
    found = FederatedIdentity.objects.select_related("user").filter(pk=identity_id).first()
    if found is None:
        return False
    with action_transaction():
        actor_and_people_locked(
            actor=actor, users=[found.user], permission=MANAGE_USERS, operation=operation,
            request=request,
        )  # fmt: skip
        ensure_not_self(actor=actor, user=found.user, operation=operation, request=request)
        link = FederatedIdentity.objects.select_for_update().filter(pk=identity_id).first()
        if link is None:
            return False
        device = ProviderMfaDevice.objects.filter(identity=link).first()
        ended = 0
        if device is not None:
            from accounts.models import UserSession

            rows = list(
                UserSession.objects.select_for_update().filter(
                    user_id=link.user_id, ended_at__isnull=True, device_id=device.persistent_id
                )
            )
            sessions_end_rows(rows=rows, reason="factor_removed")
            ended = len(rows)
        link.delete()
        audit_record(
            actor=actor,
            action=AuditAction.ACCOUNT_IDENTITY_UNLINKED,
            target=found.user,
            extra={
                "provider": link.provider,
                "issuer": link.issuer,
                "subject": link.subject,
                "sessions_ended": ended,
            },
            request=request,
        )
    return True
