from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

from accounts.credentials import backup_code_hash
from accounts.roles import role_label
from safechat.unicode_text import (
    case_insensitive_skeleton,
    refuse_at_sign,
    refuse_mixed_scripts,
    refuse_unmentionable_username,
    username_canonical,
    username_lookup_form,
    validate_label,
    validate_username,
)

SUPERUSER_REFUSED = (
    "SafeChat has no superusers: every power is a role, granted through the audited role "
    "services. On first boot run `manage.py bootstrap_admin` (a one-time link that creates "
    "the first security admin, audited `auth.bootstrap.used`); after that a security admin "
    "invites people and grants roles (docs/accounts.md, 'Who holds which power')."
)


class UserManager(DjangoUserManager["User"]):
    """Django's manager, without ``create_superuser``: ``manage.py createsuperuser`` would
    create an account outside the audit chain that holds every permission at once."""

    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra: object
    ) -> User:
        raise PermissionDenied(SUPERUSER_REFUSED)


# The most characters of a first or of a last name (``User.first_name``, ``last_name``).
NAME_PART_MAX_LENGTH = 64


def person_label(*, name: str, username: str, email: str = "") -> str:
    """How a person is named wherever others read it in plain text (titles, notices,
    notifications, accessible names, the admin): "First Last (@username)", or
    "@username" when they have no name. A display name is free text anyone may set
    ("Ada Admin" on the account ``eve``), so it never stands without the username,
    which is unique by its confusable skeleton. The template filter ``person_label``
    and the chat client's ``personLabel`` (``static/safechat/chat/dom.js``) say the same.
    With ``email`` (the admin's pickers and lists): "First Last (@username, email)", or
    "@username (email)"."""
    name = name.strip()
    if name and name != username:
        return f"{name} (@{username}, {email})" if email else f"{name} (@{username})"
    return f"@{username} ({email})" if email else f"@{username}"


class User(AbstractUser):  # type: ignore[django-manager-missing]
    """A person (or integration owner) who signs in to SafeChat.

    Custom from the first migration so that keys, roles and audit snapshots can
    hang on it without a later swap of ``AUTH_USER_MODEL``.
    """

    # Stored in its PRECIS UsernameCaseMapped form (RFC 8265): "Alice.Smith" is
    # "alice.smith" wherever it is typed (sign-in, mentions, pickers).
    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text="Letters, digits and @ . + - _ only; stored in lower case.",
        validators=[UnicodeUsernameValidator(), validate_username],
        error_messages={"unique": "That username is already taken."},
    )
    # The username's UTS #39 confusable skeleton, case-insensitive
    # (``case_insensitive_skeleton``: skeleton(casefold(skeleton(username)))): two
    # accounts never look alike ("alice" and "alice" spelt with the Cyrillic a, U+0430;
    # "b0b.smith" and "bob.smith", as 0 is confusable with O). Kept in step by clean() and
    # save(); unique in the database, so the check and the write are one step.
    username_skeleton = models.CharField(max_length=600, editable=False, default="")
    # A display name's parts are at most NAME_PART_MAX_LENGTH characters each on every
    # edge (the column keeps Django's 150, so no older name is cut).
    first_name = models.CharField(
        "first name",
        max_length=150,
        blank=True,
        validators=[validate_label, refuse_at_sign, MaxLengthValidator(NAME_PART_MAX_LENGTH)],
    )
    last_name = models.CharField(
        "last name",
        max_length=150,
        blank=True,
        validators=[validate_label, refuse_at_sign, MaxLengthValidator(NAME_PART_MAX_LENGTH)],
    )
    email = models.EmailField("email address", blank=True)
    # Bumped by every credential change (password change or reset, factor reset,
    # deactivation). Sessions and API tokens carry the value they were issued under;
    # one issued under an older value no longer works (accounts.session_policy).
    credential_epoch = models.PositiveIntegerField(default=0, editable=False)

    objects = UserManager()  # type: ignore[misc]

    class Meta:
        db_table = "accounts_user"
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            # Every power is a role (accounts.backends): no account holds all of them.
            models.CheckConstraint(
                condition=models.Q(is_superuser=False),
                name="accounts_user_no_superuser",
                violation_error_message="SafeChat has no superusers.",
            ),
            models.UniqueConstraint(
                fields=["username_skeleton"],
                name="accounts_user_username_skeleton_unique",
                violation_error_message="That username is too similar to an existing one.",
            ),
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="accounts_user_email_unique_ci",
            ),
        ]
        # Role permissions (accounts/roles.py); granted through groups, never per user.
        permissions = [
            ("create_room", "Can create rooms"),
            ("manage_users", "Can invite, deactivate users and grant roles"),
            ("manage_factors", "Can reset other users' second factors"),
            ("manage_lockouts", "Can see and lift sign-in lockouts"),
            ("manage_sessions", "Can end other users' sessions"),
            ("manage_tokens", "Can see and revoke other users' API tokens"),
        ]

    @classmethod
    def normalize_username(cls, username: str) -> str:
        """The PRECIS ``UsernameCaseMapped`` form (RFC 8265) where ``username`` is valid;
        otherwise ``username`` unchanged, for ``validate_username`` to refuse with a reason.
        Django calls it from ``UserManager.create_user`` and ``AbstractUser.clean``."""
        return username_lookup_form(str(super().normalize_username(username)))

    def display_name(self) -> str:
        """How the person is shown beside their username: "First Last" (labels, already
        validated), or the username when they have no name."""
        return self.get_full_name() or self.get_username()

    def person_label(self) -> str:
        """How the person is named to others in plain text: ``person_label``."""
        return person_label(name=self.get_full_name(), username=self.get_username())

    def admin_label(self) -> str:
        """How the admin's pickers and lists name the person: ``person_label`` with the
        e-mail address, "First Last (@username, email)"."""
        return person_label(
            name=self.get_full_name(), username=self.get_username(), email=self.email
        )

    def clean(self) -> None:
        super().clean()  # normalises the username and the email
        self._refuse_mixed_scripts()
        # Before validate_constraints, so a look-alike is a form error, not an IntegrityError.
        self.username_skeleton = case_insensitive_skeleton(self.get_username())

    def _refuse_mixed_scripts(self) -> None:
        """A new username, or a changed one, keeps to one script (``refuse_mixed_scripts``)
        and can be mentioned as itself (``refuse_unmentionable_username``: a letter or a
        digit, no full stop at the end); an account created before the rules keeps its name
        and stays editable. Only a
        username otherwise valid is judged, so each refusal is said once."""
        username = self.get_username()
        try:
            if username_canonical(username) != username:
                return  # the field's own validator says why
        except ValidationError:
            return
        if not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("username", flat=True)
            if stored.first() == username:
                return
        try:
            refuse_mixed_scripts(username)
            refuse_unmentionable_username(username)
        except ValidationError as exc:
            raise ValidationError({"username": exc}) from None

    def save(self, *args: object, **kwargs: object) -> None:
        # The skeleton follows the username on every path (services, admin, commands).
        self.username_skeleton = case_insensitive_skeleton(self.get_username())
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:  # type: ignore[operator]
            kwargs["update_fields"] = {*update_fields, "username_skeleton"}  # type: ignore[misc]
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class UserSession(models.Model):
    """One signed-in browser session, known by a hash of its key (never the key).

    The session middleware refuses a session whose row is ended or missing, so
    ending a row ends the session everywhere, including its live WebSockets.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    device_id = models.CharField(max_length=255, blank=True)  # persistent id of the factor
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True)
    # The user's credential epoch when the session was issued (or carried forward by
    # the user's own password change in this session).
    credential_epoch = models.PositiveIntegerField(default=0)
    # A federated sign-in: the link it came through, and the provider's name for its own
    # session (SAML SessionIndex, OpenID Connect sid), so that its logout ends this session.
    federated_identity = models.ForeignKey(
        "FederatedIdentity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    federated_session_index = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ended_at"], name="accounts_session_user_idx")]

    def __str__(self) -> str:
        return f"session {self.key_hash[:8]} of user {self.user_id}"


class ApiToken(models.Model):
    """A bearer token for integrations; only its SHA-256 is stored.

    The public ``prefix`` finds the row; the hash of the whole token proves it.
    """

    class Scope(models.TextChoices):
        READ = "read", "read (GET, HEAD, OPTIONS)"
        WRITE = "write", "write (read, and changes)"
        ADMIN = "admin", "admin (write, and administrative endpoints)"
        AUDIT = "audit", "audit (reading the audit export, nothing else)"
        SCIM = "scim", "scim (an identity provider's provisioning, nothing else)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The owner's credential epoch when the token was issued; a credential reset
    # (by an admin, of factors, or deactivation) makes every older token stop working.
    credential_epoch = models.PositiveIntegerField(default=0)
    # The token that minted this one (through the API), if any: always of the same user.
    # Revoking a token revokes its live descendants, and a token whose ancestor is revoked
    # is refused anyway (accounts.services.tokens). SafeChat revokes tokens and never
    # deletes one; only deleting their user does, and that takes the whole line at once
    # (PROTECT would block it), so SET_NULL never leaves a child without its revocation.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"token {self.prefix} ({self.scope}) of user {self.user_id}"


class Invitation(models.Model):
    """A single-use, expiring link through which an invited person creates their account."""

    email = models.EmailField()
    role = models.CharField(max_length=32)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Withdrawn by a security admin (``invitation_revoke``): the link creates nothing.
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"invitation of {self.email} as {self.role_label}"

    @property
    def role_label(self) -> str:
        """The role as people read it (``accounts.roles.ROLE_LABELS``)."""
        return role_label(self.role)


class BootstrapToken(models.Model):
    """The one-time link that creates the first security admin of a fresh install."""

    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"bootstrap token created {self.created_at:%Y-%m-%d %H:%M}"


class BackupCodeDevice(TimestampMixin, ThrottlingMixin, Device):  # type: ignore[misc]
    """A set of single-use backup codes, stored as salted SHA-256 hashes.

    django-otp's StaticDevice keeps its tokens in clear; this one never does.
    """

    salt: models.CharField[str, str] = models.CharField(max_length=32)

    class Meta(Device.Meta):  # type: ignore[misc]
        verbose_name = "backup code set"

    def get_throttle_factor(self) -> int:
        return 1

    def verify_token(self, token: object) -> bool:
        """Consume one unused code; a conditional UPDATE makes each code single-use."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        code_hash = backup_code_hash(salt=self.salt, code=str(token))
        consumed = BackupCode.objects.filter(
            device=self, code_hash=code_hash, used_at__isnull=True
        ).update(used_at=timezone.now())
        if consumed:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "code_hash"], name="accounts_backup_code_unique"
            )
        ]

    def __str__(self) -> str:
        return f"backup code {self.pk} of device {self.device_id}"


class FederatedIdentity(models.Model):
    """A person's identity at an external identity provider, linked to their account.

    The link is the provider's immutable name for the person: an OpenID Connect issuer and
    subject (``iss``, ``sub``), or a SAML identity provider's entity ID and persistent
    NameID. Never an e-mail address: anyone who can register an address at
    some provider would otherwise take over the account that has it (docs/sso.md).
    """

    class Protocol(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        SAML = "saml", "SAML 2.0"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="federated_identities"
    )
    # The configured provider's key when the link was made (SAFECHAT_OIDC_PROVIDERS or
    # SAFECHAT_SAML_IDPS).
    provider = models.CharField(max_length=32)
    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.OIDC)
    # OIDC ``iss`` / SAML IdP entity ID, and OIDC ``sub`` (at most 255 ASCII characters,
    # Core 1.0, 2) / SAML persistent NameID: compared exactly, as the provider sent them.
    issuer = models.CharField(max_length=512)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    # How it came to be: "admin" (a security admin linked it) or "created" (the account was
    # created at its first sign-in, where the provider allows that).
    linked_via = models.CharField(max_length=16)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"], name="accounts_federated_identity_unique"
            ),
            # One identity per provider and account: a second subject at the same issuer
            # for one person is a mistake or an attack, never a convenience.
            models.UniqueConstraint(
                fields=["user", "issuer"], name="accounts_federated_identity_one_per_issuer"
            ),
        ]

    def __str__(self) -> str:
        return f"identity at {self.provider} of user {self.user_id}"


class SamlAssertionUse(models.Model):
    """A SAML assertion that was presented to SafeChat, remembered until it would no longer
    be accepted anyway, so that it signs in at most once (SAML Profiles 4.1.4.5).

    Both the assertion (by its issuer and ID) and the request it answers are unique: of two
    posts of one assertion at the same instant, or two assertions answering one request,
    the database lets exactly one through. Rows past ``expires_at`` are deleted as new ones
    arrive.
    """

    issuer = models.CharField(max_length=512)
    # The assertion's ID and the ID of SafeChat's AuthnRequest it answers (xs:ID values).
    assertion_id = models.CharField(max_length=256)
    request_id = models.CharField(max_length=256)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "assertion_id"], name="accounts_saml_assertion_once"
            ),
            models.UniqueConstraint(fields=["request_id"], name="accounts_saml_request_once"),
        ]

    def __str__(self) -> str:
        return f"assertion {self.assertion_id} of {self.issuer}"


class OidcLogoutTokenUse(models.Model):
    """An OpenID Connect Logout Token that was presented to SafeChat, remembered until it
    would no longer be accepted anyway, so that it ends sessions at most once
    (Back-Channel Logout 1.0, section 2.6, step 9: its ``jti``).

    Unique by its issuer and ``jti``: of two deliveries of one token at the same instant,
    the database lets exactly one through. Rows past ``expires_at`` are deleted as new
    ones arrive.
    """

    issuer = models.CharField(max_length=512)
    jti = models.CharField(max_length=256)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "jti"], name="accounts_oidc_logout_token_once"
            )
        ]

    def __str__(self) -> str:
        return f"logout token {self.jti} of {self.issuer}"


class ProviderMfaDevice(Device):  # type: ignore[misc]
    """The record that a trusted provider's multi-factor sign-in stood for SafeChat's own
    second factor (django-otp's verified session names a device). It verifies nothing by
    itself, is never listed or counted as a factor, and goes with its identity's link:
    unlinking ends the sessions it verified."""

    identity: models.OneToOneField[FederatedIdentity, FederatedIdentity] = models.OneToOneField(
        FederatedIdentity, on_delete=models.CASCADE, related_name="mfa_device"
    )

    class Meta(Device.Meta):  # type: ignore[misc]
        verbose_name = "provider multi-factor sign-in"

    def verify_token(self, token: object) -> bool:
        return False

    def verify_is_allowed(self) -> tuple[bool, dict[str, object] | None]:
        return False, {"reason": "provider-asserted"}


class ProvisionedAccount(models.Model):
    """An account as an identity provider's provisioning (SCIM 2.0, RFC 7643) knows it:
    the provider's own identifier for the person (``externalId``), kept as sent and never
    used to find an account for sign-in (links do that, by subject). Created with the
    account by SCIM, or when SCIM first writes to an existing account."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provisioning"
    )
    external_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"provisioning of user {self.user_id}"


class ScimGroup(models.Model):
    """A group as an identity provider's provisioning pushes it (SCIM 2.0 ``Group``, RFC
    7643, 4.2): its ``displayName``, the provider's own identifier (``externalId``) and its
    members. A provisioning object, not a SafeChat group: what its membership means here
    (roles, information-barrier groups) is the configured provider's ``role_map`` and
    ``barrier_group_map``, which name it by its ``displayName`` or its ``externalId``
    (docs/sso.md "SCIM Groups"). ``display_name`` is unique, exactly as sent."""

    display_name = models.CharField(max_length=255, unique=True)
    external_id = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="scim_groups", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SCIM group {self.pk}"

    def values(self) -> frozenset[str]:
        """The values a provider's mapping may name this group by."""
        return frozenset(v for v in (self.display_name, self.external_id) if v)
